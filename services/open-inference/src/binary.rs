//! The binary tensor data extension (Triton's `binary_tensor_data.md`):
//! after the JSON header (its length in `Inference-Header-Content-Length`)
//! come the tensors whose `binary_data_size` parameter says how many bytes
//! each takes, in the order the JSON lists them: elements little-endian and
//! row-major, BOOL one byte each, each BYTES element a 4-byte
//! little-endian length and its bytes.

use inference_core::{Data, Datatype};

/// `bytes` as `count` elements of `datatype`.
///
/// # Errors
/// The byte count does not match the element count (fixed-size types), a
/// BYTES length runs past the end, or bytes are left over; BOOL bytes other
/// than 0 and 1.
pub fn read(bytes: &[u8], datatype: Datatype, count: usize) -> Result<Data, String> {
    if let Some(size) = datatype.size() {
        let expected = count.checked_mul(size).ok_or("the shape is too large")?;
        if bytes.len() != expected {
            return Err(format!(
                "binary_data_size is {} bytes, but {count} {datatype} element(s) take {expected}",
                bytes.len()
            ));
        }
    }
    // `f` a type parameter, not a `fn` pointer: each element type gets its
    // own loop with the conversion inlined (a call per element took a
    // third of the time a 3x64x64 image's request spends in the server).
    fn fixed<const N: usize, T>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
        bytes
            .chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                f(a)
            })
            .collect()
    }
    Ok(match datatype {
        Datatype::Bool => Data::Bool(
            bytes
                .iter()
                .map(|b| match b {
                    0 => Ok(false),
                    1 => Ok(true),
                    other => Err(format!("BOOL bytes are 0 or 1, not {other}")),
                })
                .collect::<Result<_, _>>()?,
        ),
        Datatype::Uint8 => Data::Uint8(bytes.to_vec()),
        Datatype::Int8 => Data::Int8(fixed(bytes, i8::from_le_bytes)),
        Datatype::Uint16 => Data::Uint16(fixed(bytes, u16::from_le_bytes)),
        Datatype::Int16 => Data::Int16(fixed(bytes, i16::from_le_bytes)),
        Datatype::Fp16 => Data::Fp16(fixed(bytes, u16::from_le_bytes)),
        Datatype::Uint32 => Data::Uint32(fixed(bytes, u32::from_le_bytes)),
        Datatype::Int32 => Data::Int32(fixed(bytes, i32::from_le_bytes)),
        Datatype::Fp32 => Data::Fp32(fixed(bytes, f32::from_le_bytes)),
        Datatype::Uint64 => Data::Uint64(fixed(bytes, u64::from_le_bytes)),
        Datatype::Int64 => Data::Int64(fixed(bytes, i64::from_le_bytes)),
        Datatype::Fp64 => Data::Fp64(fixed(bytes, f64::from_le_bytes)),
        Datatype::Bytes => {
            // Each element at least its 4-byte length: a count the bytes
            // cannot hold is refused before anything is reserved.
            if count > bytes.len() / 4 {
                return Err(format!(
                    "{} bytes cannot hold {count} BYTES element(s)",
                    bytes.len()
                ));
            }
            let mut rest = bytes;
            let mut out = Vec::with_capacity(count);
            for i in 0..count {
                let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                    return Err(format!("BYTES element {i} has no length: the data ends"));
                };
                let len = u32::from_le_bytes(*len) as usize;
                if len > tail.len() {
                    return Err(format!(
                        "BYTES element {i} says {len} bytes, but {} remain",
                        tail.len()
                    ));
                }
                out.push(tail[..len].to_vec());
                rest = &tail[len..];
            }
            if !rest.is_empty() {
                return Err(format!(
                    "{} byte(s) are left after {count} BYTES element(s)",
                    rest.len()
                ));
            }
            Data::Bytes(out)
        }
    })
}

/// `data` in the binary form, appended to `out`.
pub fn write(data: &Data, out: &mut Vec<u8>) {
    /// Each element's `N` little-endian bytes, reserved at once.
    fn put<const N: usize, T: Copy>(v: &[T], out: &mut Vec<u8>, f: impl Fn(T) -> [u8; N]) {
        out.reserve(v.len().saturating_mul(N));
        for x in v {
            out.extend_from_slice(&f(*x));
        }
    }
    match data {
        Data::Bool(v) => out.extend(v.iter().map(|b| u8::from(*b))),
        Data::Uint8(v) => out.extend_from_slice(v),
        Data::Int8(v) => put(v, out, i8::to_le_bytes),
        Data::Uint16(v) | Data::Fp16(v) => put(v, out, u16::to_le_bytes),
        Data::Int16(v) => put(v, out, i16::to_le_bytes),
        Data::Uint32(v) => put(v, out, u32::to_le_bytes),
        Data::Int32(v) => put(v, out, i32::to_le_bytes),
        Data::Fp32(v) => put(v, out, f32::to_le_bytes),
        Data::Uint64(v) => put(v, out, u64::to_le_bytes),
        Data::Int64(v) => put(v, out, i64::to_le_bytes),
        Data::Fp64(v) => put(v, out, f64::to_le_bytes),
        Data::Bytes(v) => {
            for b in v {
                // A tensor element larger than 4 GiB cannot be sent in this
                // form; the server never makes one (bodies are bounded).
                let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(b);
            }
        }
        // No wire form: encode_response_binary refuses them first.
        Data::Opaque(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_datatype_reads_back_what_was_written() {
        for data in [
            Data::Bool(vec![true, false]),
            Data::Uint8(vec![0, 255]),
            Data::Int8(vec![-128, 127]),
            Data::Uint16(vec![0, u16::MAX]),
            Data::Int16(vec![i16::MIN, 1]),
            Data::Fp16(vec![0x3e00, 0xc000]),
            Data::Uint32(vec![0, u32::MAX]),
            Data::Int32(vec![i32::MIN, 7]),
            Data::Fp32(vec![-0.0, 1.5]),
            Data::Uint64(vec![0, u64::MAX]),
            Data::Int64(vec![i64::MIN, 9_007_199_254_740_993]),
            Data::Fp64(vec![0.1, -2.5]),
            Data::Bytes(vec![b"".to_vec(), b"abc".to_vec()]),
        ] {
            let mut bytes = Vec::new();
            write(&data, &mut bytes);
            assert_eq!(
                read(&bytes, data.datatype(), 2),
                Ok(data.clone()),
                "{data:?}"
            );
        }
    }

    #[test]
    fn sizes_that_lie_are_refused() {
        let err = read(&[0; 7], Datatype::Fp32, 2).expect_err("short");
        assert!(
            err.contains("7 bytes, but 2 FP32 element(s) take 8"),
            "{err}"
        );
        let err = read(&[2], Datatype::Bool, 1).expect_err("bool");
        assert!(err.contains("0 or 1"), "{err}");
        // A BYTES length past the end, a count the bytes cannot hold, and
        // bytes left over.
        let err = read(&[9, 0, 0, 0, b'a'], Datatype::Bytes, 1).expect_err("past the end");
        assert!(err.contains("says 9 bytes, but 1 remain"), "{err}");
        let err = read(&[0; 8], Datatype::Bytes, 1 << 40).expect_err("count");
        assert!(err.contains("cannot hold"), "{err}");
        let err = read(&[0, 0, 0, 0, 1], Datatype::Bytes, 1).expect_err("left over");
        assert!(err.contains("1 byte(s) are left"), "{err}");
        assert!(read(&[0; 8], Datatype::Int64, usize::MAX).is_err());
    }
}
