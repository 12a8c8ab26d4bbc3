//! HTTP/2 stream floods, written frame by frame: more streams than the
//! server allows, and the rapid-reset attack (CVE-2023-44487).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;

use crate::shared::Soak;
use crate::{MALFORMED, wire};

/// One HTTP/2 connection opening `streams` streams as fast as it can:
/// requests with malformed bodies, or (rapid reset) HEADERS each followed
/// by RST_STREAM.
pub async fn stream_flood(soak: &Soak, streams: u32, rapid_reset: bool) {
    let class = if rapid_reset {
        "HTTP/2 rapid reset (streams)"
    } else {
        "HTTP/2 stream flood (streams)"
    };
    let Ok(mut tls) = wire::connect(&soak.tls(&[b"h2"]), soak.proxy).await else {
        soak.tally.add(class, "refused at connect", true);
        return;
    };
    if tls.write_all(&wire::preface()).await.is_err() {
        soak.tally.add(class, "closed before the preface", false);
        return;
    }
    let (mut reader, mut writer) = tokio::io::split(tls);
    let writing = tokio::spawn(async move {
        let ids: Vec<u32> = (0..streams).map(|n| 1 + 2 * n).collect();
        for batch in ids.chunks(50) {
            let mut frames = Vec::new();
            for &id in batch {
                if rapid_reset {
                    frames.push(wire::post_headers(id, "/mutate", false));
                    // CANCEL
                    frames.push(wire::Frame::new(
                        wire::RST_STREAM,
                        0,
                        id,
                        0x8u32.to_be_bytes().to_vec(),
                    ));
                } else {
                    frames.push(wire::post_headers(id, "/mutate", false));
                    frames.push(wire::data(id, MALFORMED, true));
                }
            }
            if wire::write_frames(&mut writer, &frames).await.is_err() {
                return writer;
            }
        }
        writer
    });
    // Per stream: its status, or the RST_STREAM code.
    let mut answered: BTreeMap<u32, String> = BTreeMap::new();
    let mut goaway: Option<(u32, u32)> = None;
    // How the connection ended, when the server ended it.
    let mut ended = "";
    let read = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let frame = match wire::read_frame(&mut reader).await {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    ended = "closed";
                    break;
                }
                Err(_) => {
                    ended = "reset";
                    break;
                }
            };
            match frame.kind {
                wire::HEADERS if frame.stream != 0 => {
                    let status = frame.status().map_or("other".to_owned(), |s| s.to_string());
                    answered
                        .entry(frame.stream)
                        .or_insert(format!("answered {status}"));
                }
                wire::RST_STREAM => {
                    let code = frame.error_code().unwrap_or(u32::MAX);
                    let outcome = match code {
                        7 => "refused (REFUSED_STREAM)".to_owned(),
                        8 => "reset (CANCEL)".to_owned(),
                        0 => "reset (NO_ERROR)".to_owned(),
                        other => format!("reset (code {other})"),
                    };
                    answered.entry(frame.stream).or_insert(outcome);
                }
                wire::GOAWAY => {
                    let last = frame.payload.get(..4).map_or(0, |b| {
                        u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff
                    });
                    // Keep reading: streams up to `last` may still be
                    // answered before the server closes.
                    goaway = Some((last, frame.error_code().unwrap_or(u32::MAX)));
                }
                _ => {}
            }
            if goaway.is_none() && answered.len() as u32 >= streams {
                break;
            }
        }
    })
    .await;
    let writer = writing.await.ok();
    drop(writer);
    if read.is_err() {
        soak.tally
            .add(class, "connection still open after 15s", false);
    }
    let conn_class = if rapid_reset {
        "HTTP/2 rapid reset (connections)"
    } else {
        "HTTP/2 stream flood (connections)"
    };
    match goaway {
        Some((_, code)) => soak
            .tally
            .add(conn_class, format!("GOAWAY code {code}"), true),
        None if ended.is_empty() => soak.tally.add(conn_class, "every stream answered", true),
        None => soak.tally.add(
            conn_class,
            format!("{ended} by the server, no GOAWAY read"),
            true,
        ),
    }
    for id in (0..streams).map(|n| 1 + 2 * n) {
        match answered.get(&id) {
            Some(outcome) => {
                let expected = outcome == "answered 400"
                    || outcome.starts_with("refused")
                    // A stream the client cancelled needs no answer.
                    || (rapid_reset && outcome.starts_with("reset"));
                soak.tally.add(class, outcome.clone(), expected);
            }
            None => match goaway {
                // Streams above GOAWAY's last id were never processed: the
                // client may retry them elsewhere (RFC 9113, 6.8).
                Some((last, _)) if id > last => {
                    soak.tally.add(class, "not processed (above GOAWAY)", true)
                }
                // ENHANCE_YOUR_CALM: h2's flood guard (too many refused or
                // reset streams) drops the connection and what it carried.
                Some((_, 11)) => soak.tally.add(
                    class,
                    "dropped with the connection (GOAWAY ENHANCE_YOUR_CALM)",
                    true,
                ),
                // The server ended the connection of a client that opened
                // streams past the advertised limit; the GOAWAY before the
                // reset can be lost with the unread bytes (TCP RST, and the
                // proxy closing both ends).
                None if !ended.is_empty() => soak.tally.add(
                    class,
                    format!("dropped with the connection ({ended} by the server)"),
                    true,
                ),
                _ if rapid_reset => {
                    soak.tally
                        .add(class, "cancelled by the client, no answer", true)
                }
                _ => soak.tally.add(class, "no answer", false),
            },
        }
    }
}
