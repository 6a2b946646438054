"""Checks a release the way cosign would, with code that is not ours.

Usage: verify_release.py PUBLIC_KEY_PEM SIG_DIR ATT_DIR IMAGE_DIGEST [--tamper payload|digest]

SIG_DIR and ATT_DIR are `skopeo copy ... dir:` copies of the image's
`sha256-<hex>.sig` and `sha256-<hex>.att` artifacts. Verifies the simple
signing layer's ECDSA P-256 signature (annotation
dev.cosignproject.cosign/signature) and that it names IMAGE_DIGEST; each
DSSE envelope's signature over DSSEv1 PAE, and that its in-toto subject is
IMAGE_DIGEST; validates the CycloneDX predicate against the CycloneDX 1.5
JSON schema (cyclonedx-python-lib). With --tamper, changes one byte of the
payload (or the expected digest) first; then verification must fail.
Prints one line per check; exits 1 on the first failure.
"""

import base64
import json
import os
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def fail(why):
    print("FAIL:", why)
    sys.exit(1)


def blob(directory, digest):
    with open(os.path.join(directory, digest.split(":", 1)[1]), "rb") as f:
        return f.read()


def manifest(directory):
    with open(os.path.join(directory, "manifest.json"), "rb") as f:
        return json.load(f)


def verify(key, signature, message, what):
    try:
        key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        fail(f"{what}: the signature does not verify")
    print(f"ok: {what} signature verifies")


def pae(payload_type, payload):
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def flip(data):
    return bytes([data[0] ^ 1]) + data[1:]


def main():
    key_path, sig_dir, att_dir, digest = sys.argv[1:5]
    tamper = sys.argv[6] if len(sys.argv) > 6 and sys.argv[5] == "--tamper" else None
    with open(key_path, "rb") as f:
        key = serialization.load_pem_public_key(f.read())
    if not isinstance(key.curve, ec.SECP256R1):
        fail("the public key is not P-256")
    if tamper == "digest":
        digest = digest[:-1] + ("0" if digest[-1] != "0" else "1")

    layer = manifest(sig_dir)["layers"][0]
    if layer["mediaType"] != "application/vnd.dev.cosign.simplesigning.v1+json":
        fail("the .sig layer is not a simple signing payload")
    payload = blob(sig_dir, layer["digest"])
    if tamper == "payload":
        payload = flip(payload)
    signature = base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"])
    verify(key, signature, payload, "image")
    named = json.loads(payload)["critical"]["image"]["docker-manifest-digest"]
    if named != digest:
        fail(f"the signature names {named}, not {digest}")
    print("ok: the signature names the image digest")

    predicates = set()
    for layer in manifest(att_dir)["layers"]:
        if layer["mediaType"] != "application/vnd.dsse.envelope.v1+json":
            fail("an .att layer is not a DSSE envelope")
        envelope = json.loads(blob(att_dir, layer["digest"]))
        statement_bytes = base64.b64decode(envelope["payload"])
        if tamper == "payload":
            statement_bytes = flip(statement_bytes)
        sig = base64.b64decode(envelope["signatures"][0]["sig"])
        predicate_type = layer["annotations"]["predicateType"]
        verify(key, sig, pae(envelope["payloadType"], statement_bytes), predicate_type)
        statement = json.loads(statement_bytes)
        if statement["_type"] != "https://in-toto.io/Statement/v1":
            fail("not an in-toto Statement v1")
        subject = "sha256:" + statement["subject"][0]["digest"]["sha256"]
        if subject != digest:
            fail(f"the {predicate_type} attestation is about {subject}, not {digest}")
        predicates.add(statement["predicateType"])
        if statement["predicateType"] == "https://cyclonedx.org/bom":
            from cyclonedx.schema import SchemaVersion
            from cyclonedx.validation.json import JsonStrictValidator

            errors = JsonStrictValidator(SchemaVersion.V1_5).validate_str(
                json.dumps(statement["predicate"])
            )
            if errors is not None:
                fail(f"the SBOM is not valid CycloneDX 1.5: {errors}")
            print("ok: the SBOM validates against the CycloneDX 1.5 JSON schema")
    wanted = {"https://cyclonedx.org/bom", "https://slsa.dev/provenance/v1"}
    if predicates != wanted:
        fail(f"attestations {sorted(predicates)}, expected {sorted(wanted)}")
    print("ok: SBOM and SLSA provenance attestations")


main()
