//! Abusive clients that loop until the run ends: idle connections, slow
//! headers, slow bodies, oversized bodies and malformed JSON. Each counts
//! what came of every attempt in the tally.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::Instant;

use crate::plan::{FIRST_REQUEST_TIMEOUT, HEADER_READ_TIMEOUT, MAX_BODY_BYTES, REQUEST_TIMEOUT};
use crate::shared::Soak;
use crate::{MALFORMED, REVIEW, wire};

/// Connects (TLS, then nothing) and waits for the server to close; again,
/// until the run ends.
pub async fn idle_holder(soak: &Soak) {
    let connector = soak.tls(&[]);
    while soak.running() {
        let mut tls = match wire::connect(&connector, soak.proxy).await {
            Ok(tls) => tls,
            Err(_) => {
                // Refused at a replica's cap (or while it restarts).
                soak.tally.add("idle: connection refused", "refused", true);
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        let since = Instant::now();
        soak.idle_open.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 512];
        let closed = loop {
            tokio::select! {
                read = tls.read(&mut buf) => match read {
                    Ok(0) | Err(_) => break true,
                    Ok(_) => {}
                },
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    if !soak.running() { break false; }
                }
            }
        };
        soak.idle_open.fetch_sub(1, Ordering::Relaxed);
        if closed {
            soak.idle_reaped.fetch_add(1, Ordering::Relaxed);
            let lived = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
            soak.idle_longest_ms.fetch_max(lived, Ordering::Relaxed);
        }
    }
}

/// Request headers one line every 500ms: on a new connection (the first
/// request deadline) or after a first request (the header deadline).
pub async fn slow_headers(soak: &Soak, kept_alive: bool) {
    let class = if kept_alive {
        "slow headers (kept-alive)"
    } else {
        "slow headers (first request)"
    };
    let deadline = if kept_alive {
        HEADER_READ_TIMEOUT
    } else {
        FIRST_REQUEST_TIMEOUT
    };
    let connector = soak.tls(&[b"http/1.1"]);
    while soak.running() {
        let Ok(tls) = wire::connect(&connector, soak.proxy).await else {
            soak.tally.add(class, "refused at connect", true);
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        };
        let (mut reader, mut writer) = tokio::io::split(tls);
        if kept_alive {
            let first = wire::http1_post("/mutate", REVIEW);
            if writer.write_all(&first).await.is_err()
                || wire::http1_response(&mut reader).await.is_err()
            {
                soak.tally.add(class, "first request failed", false);
                continue;
            }
        }
        let since = Instant::now();
        let trickle = tokio::spawn(async move {
            let _ = writer
                .write_all(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\n")
                .await;
            for i in 0..200 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if writer
                    .write_all(format!("X-Slow-{i}: a\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let mut buf = Vec::new();
        let read = tokio::time::timeout(
            deadline + Duration::from_secs(5),
            reader.read_to_end(&mut buf),
        )
        .await;
        trickle.abort();
        let elapsed = since.elapsed();
        match read {
            Err(_) => soak.tally.add(class, "still open past its deadline", false),
            Ok(_) if !buf.is_empty() => {
                let status = String::from_utf8_lossy(&buf[..buf.len().min(12)]).to_string();
                soak.tally.add(
                    class,
                    format!("answered {}", status.trim()),
                    status.contains(" 4"),
                );
            }
            Ok(_) => soak.tally.add(
                class,
                "closed at its deadline",
                elapsed <= deadline + Duration::from_secs(2),
            ),
        }
    }
}

/// Headers at once, then the body 16 bytes every 500ms: the request
/// timeout answers.
pub async fn slow_body(soak: &Soak) {
    const CLASS: &str = "slow body";
    let connector = soak.tls(&[b"http/1.1"]);
    while soak.running() {
        let Ok(tls) = wire::connect(&connector, soak.proxy).await else {
            soak.tally.add(CLASS, "refused at connect", true);
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        };
        let (mut reader, mut writer) = tokio::io::split(tls);
        let since = Instant::now();
        let trickle = tokio::spawn(async move {
            let head = format!(
                "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                REVIEW.len()
            );
            let _ = writer.write_all(head.as_bytes()).await;
            for chunk in REVIEW.chunks(16) {
                if writer.write_all(chunk).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        let read = tokio::time::timeout(
            REQUEST_TIMEOUT + Duration::from_secs(5),
            wire::http1_response(&mut reader),
        )
        .await;
        trickle.abort();
        match read {
            Err(_) => soak.tally.add(CLASS, "still open past its deadline", false),
            Ok(Ok((status, _))) => soak.tally.add(
                CLASS,
                format!("answered {status}"),
                // The request timeout's answer (TimeoutLayer), in time.
                (status == 503 || (400..500).contains(&status))
                    && since.elapsed() <= REQUEST_TIMEOUT + Duration::from_secs(2),
            ),
            Ok(Err(_)) => soak.tally.add(CLASS, "closed without an answer", false),
        }
    }
}

/// Oversized bodies (declared and chunked) and malformed JSON, over
/// HTTP/2 and HTTP/1.1 clients.
pub async fn bad_bodies(soak: &Soak) {
    let clients = [soak.client(false), soak.client(true)];
    let url = soak.url("/mutate");
    let oversized = vec![b'x'; MAX_BODY_BYTES + 1024];
    let mut round = 0usize;
    while soak.running() {
        let client = &clients[round % 2];
        round += 1;
        let cases: [(&'static str, reqwest::Body, u16); 3] = [
            (
                "oversized body (Content-Length)",
                reqwest::Body::from(oversized.clone()),
                413,
            ),
            ("oversized body (chunked)", chunked(oversized.clone()), 413),
            (
                "malformed JSON",
                reqwest::Body::from(MALFORMED.to_vec()),
                400,
            ),
        ];
        for (class, body, expected) in cases {
            match client.post(&url).body(body).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    soak.tally
                        .add(class, format!("answered {status}"), status == expected);
                }
                // The server answers 413 before reading the body and closes
                // an HTTP/1.1 connection; a client still writing may see the
                // close instead of the answer.
                Err(err)
                    if class.starts_with("oversized") && (err.is_request() || err.is_body()) =>
                {
                    soak.tally
                        .add(class, "closed while the client was still sending", true);
                }
                Err(err) if err.is_connect() => soak.tally.add(class, "refused at connect", true),
                Err(err) => soak.tally.add(class, format!("error: {err}"), false),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn chunked(bytes: Vec<u8>) -> reqwest::Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}
