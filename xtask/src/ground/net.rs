//! Ports on this machine: whether one is free to listen on, whether
//! something listens on one.

use std::net::{TcpListener, TcpStream};

/// Ok when `port` on `address` can be listened on; the bind error otherwise.
pub fn port_free(address: &str, port: u16) -> std::io::Result<()> {
    TcpListener::bind((address, port)).map(drop)
}

/// A port on 127.0.0.1 that is free right now (the kernel's pick).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// Whether something accepts connections on 127.0.0.1:`port`.
pub fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}
