//! A plain-HTTP "registry" on loopback that answers as a test tells it to:
//! for registries that lie, stream without end, or redirect where they
//! should not. One request per connection (`Connection: close`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

/// What the fake was asked.
pub struct Request {
    /// The fake's own `host:port`.
    pub host: String,
    /// The path and query.
    pub path: String,
    pub authorization: Option<String>,
}

pub enum Body {
    Bytes(Vec<u8>),
    /// Zeros until the client hangs up.
    Endless,
}

pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Answer {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: Body::Bytes(body.into()),
        }
    }

    pub fn endless(status: u16, content_type: &str) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: Body::Endless,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A running fake: its `host:port`, how many requests it answered and how
/// many body bytes it got to send.
pub struct Fake {
    pub host: String,
    pub requests: Arc<AtomicU64>,
    pub sent: Arc<AtomicU64>,
}

pub async fn start(route: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let requests = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let route = Arc::new(route);
    let fake = Fake {
        host: host.clone(),
        requests: Arc::clone(&requests),
        sent: Arc::clone(&sent),
    };
    tokio::spawn(async move {
        while let Ok((connection, _)) = listener.accept().await {
            let (route, host, requests, sent) = (
                Arc::clone(&route),
                host.clone(),
                Arc::clone(&requests),
                Arc::clone(&sent),
            );
            tokio::spawn(async move {
                let mut connection = BufReader::new(connection);
                let mut request_line = String::new();
                if connection.read_line(&mut request_line).await.is_err() {
                    return;
                }
                let mut authorization = None;
                loop {
                    let mut header = String::new();
                    if connection.read_line(&mut header).await.is_err() {
                        return;
                    }
                    if header.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = header.split_once(':')
                        && name.eq_ignore_ascii_case("authorization")
                    {
                        authorization = Some(value.trim().to_owned());
                    }
                }
                requests.fetch_add(1, Ordering::SeqCst);
                let request = Request {
                    host,
                    path: request_line.split(' ').nth(1).unwrap_or("/").to_owned(),
                    authorization,
                };
                let answer = route(&request);
                let mut head = format!("HTTP/1.1 {} Fake\r\n", answer.status);
                for (name, value) in &answer.headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                if let Body::Bytes(body) = &answer.body
                    && !answer
                        .headers
                        .iter()
                        .any(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                {
                    head.push_str(&format!("Content-Length: {}\r\n", body.len()));
                }
                head.push_str("Connection: close\r\n\r\n");
                let connection = connection.get_mut();
                if connection.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                match answer.body {
                    Body::Bytes(body) => {
                        if connection.write_all(&body).await.is_ok() {
                            sent.fetch_add(body.len() as u64, Ordering::SeqCst);
                        }
                    }
                    Body::Endless => {
                        let chunk = vec![b'0'; 64 << 10];
                        while connection.write_all(&chunk).await.is_ok() {
                            sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                        }
                    }
                }
                let _ = connection.shutdown().await;
            });
        }
    });
    fake
}
