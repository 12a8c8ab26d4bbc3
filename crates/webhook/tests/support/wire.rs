//! Speaking to the webhook below reqwest: TLS with a chosen ALPN, raw
//! HTTP/1.1, and raw HTTP/2 frames (RFC 9113), for clients that misbehave
//! on purpose. Shared by tests/limits.rs and benches/soak/.
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A TLS client trusting only `ca_pem`, offering `alpn` (empty: no ALPN).
pub fn connector(ca_pem: &str, alpn: &[&[u8]]) -> TlsConnector {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

pub async fn connect(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect("localhost".try_into().expect("server name"), tcp)
        .await
}

/// Reads and discards until the peer closes (EOF or reset); `Err` if it is
/// still open after `limit`.
pub async fn closed_within<S: AsyncRead + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> Result<(), ()> {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .map_err(|_| ())
}

// === HTTP/1.1 ===

/// A POST with a Content-Length, keeping the connection alive.
pub fn http1_post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// Reads one response with a Content-Length body; returns (status, body).
pub async fn http1_response<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<(u16, Vec<u8>)> {
    let (status, _, body) = http1_response_with_head(stream).await?;
    Ok((status, body))
}

/// Reads one response with a Content-Length body; returns (status, head,
/// body).
pub async fn http1_response_with_head<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> io::Result<(u16, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("not an HTTP response: {head:?}")))?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((status, head, buf[head_end..head_end + length].to_vec()))
}

// === HTTP/2 ===

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const REFUSED_STREAM: u32 = 0x7;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn new(kind: u8, flags: u8, stream: u32, payload: Vec<u8>) -> Self {
        Self {
            kind,
            flags,
            stream,
            payload,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let len = self.payload.len() as u32;
        let mut out = Vec::with_capacity(9 + self.payload.len());
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.push(self.kind);
        out.push(self.flags);
        out.extend_from_slice(&(self.stream & 0x7fff_ffff).to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// The error code of a RST_STREAM or GOAWAY.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            RST_STREAM => 0,
            GOAWAY => 4,
            _ => return None,
        };
        Some(u32::from_be_bytes(
            self.payload.get(at..at + 4)?.try_into().ok()?,
        ))
    }

    /// (identifier, value) pairs of a SETTINGS frame.
    pub fn settings(&self) -> Vec<(u16, u32)> {
        self.payload
            .chunks_exact(6)
            .map(|s| {
                (
                    u16::from_be_bytes([s[0], s[1]]),
                    u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
                )
            })
            .collect()
    }

    /// The status of a response HEADERS frame, when HPACK encodes it as a
    /// static-table index (200, 204, 206, 304, 400, 404, 500: hyper does).
    pub fn status(&self) -> Option<u16> {
        match self.payload.first()? {
            0x88 => Some(200),
            0x89 => Some(204),
            0x8a => Some(206),
            0x8b => Some(304),
            0x8c => Some(400),
            0x8d => Some(404),
            0x8e => Some(500),
            _ => None,
        }
    }
}

/// The client preface and an empty SETTINGS frame.
pub fn preface() -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend(Frame::new(SETTINGS, 0, 0, Vec::new()).encode());
    out
}

/// HEADERS for `POST path` (HPACK literals, no Huffman, no indexing).
pub fn post_headers(stream: u32, path: &str, end_stream: bool) -> Frame {
    let mut block = vec![0x83, 0x87]; // :method POST, :scheme https
    for (name_index, value) in [(4u8, path), (1u8, "localhost")] {
        // Literal without indexing, indexed name (:path, :authority).
        block.push(name_index);
        assert!(value.len() < 127);
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
    Frame::new(HEADERS, flags, stream, block)
}

pub fn data(stream: u32, body: &[u8], end_stream: bool) -> Frame {
    Frame::new(
        DATA,
        if end_stream { END_STREAM } else { 0 },
        stream,
        body.to_vec(),
    )
}

pub async fn write_frames<S: AsyncWrite + Unpin>(
    stream: &mut S,
    frames: &[Frame],
) -> io::Result<()> {
    let bytes: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
    stream.write_all(&bytes).await?;
    stream.flush().await
}

/// The next frame; `None` once the peer has closed.
pub async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Option<Frame>> {
    let mut header = [0u8; 9];
    match stream.read_exact(&mut header).await {
        Ok(_) => {}
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
            ) =>
        {
            return Ok(None);
        }
        Err(err) => return Err(err),
    }
    let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await?;
    Ok(Some(Frame {
        kind: header[3],
        flags: header[4],
        stream: u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff,
        payload,
    }))
}

/// The next frame, answering SETTINGS and PING as a well-behaved client
/// does; `None` once the peer has closed.
pub async fn next_frame<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> io::Result<Option<Frame>> {
    let Some(frame) = read_frame(stream).await? else {
        return Ok(None);
    };
    if frame.kind == SETTINGS && frame.flags & ACK == 0 {
        write_frames(stream, &[Frame::new(SETTINGS, ACK, 0, Vec::new())]).await?;
    }
    if frame.kind == PING && frame.flags & ACK == 0 {
        write_frames(stream, &[Frame::new(PING, ACK, 0, frame.payload.clone())]).await?;
    }
    Ok(Some(frame))
}
