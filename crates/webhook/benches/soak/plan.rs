//! The size of the run and the flags each replica gets.

use std::time::Duration;

/// Shorter deadlines than the defaults so that idle and slow connections
/// are closed several times within one run; the caps and stream limit are
/// the defaults but for --max-connections (see `max_connections`).
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
pub const MAX_BODY_BYTES: usize = 256 * 1024;
const MAX_CONCURRENT_STREAMS: u32 = 100;

pub struct Plan {
    pub reviews: usize,
    pub idle: usize,
    pub rate: usize,
    /// Valid-load workers per HTTP/2 client (4 clients) and on the
    /// HTTP/1.1 client (one connection each).
    pub workers: usize,
    pub slow_clients: usize,
    pub flood_streams: u32,
}

impl Plan {
    pub fn from_env(smoke: bool) -> Self {
        let number = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        if smoke {
            return Self {
                reviews: 300,
                idle: 20,
                rate: 150,
                workers: 2,
                slow_clients: 2,
                flood_streams: 150,
            };
        }
        Self {
            reviews: number("LANDGATE_SOAK_REVIEWS", 10_000),
            idle: number("LANDGATE_SOAK_IDLE", 1000),
            rate: number("LANDGATE_SOAK_RATE", 500).max(1),
            workers: 6,
            slow_clients: 20,
            flood_streams: 1000,
        }
    }

    /// Every idle connection can land on one replica while the other
    /// restarts: the cap leaves room above them for the API server's own
    /// connections, and the cap burst fills it to show the refusal.
    pub fn max_connections(&self) -> usize {
        self.idle + self.idle / 2 + 24
    }

    pub fn expected_duration(&self) -> Duration {
        Duration::from_secs_f64(self.reviews as f64 / self.rate as f64)
    }

    pub fn flags(&self) -> Vec<String> {
        let secs = |d: Duration| format!("{}ms", d.as_millis());
        [
            ("--first-request-timeout", secs(FIRST_REQUEST_TIMEOUT)),
            ("--header-read-timeout", secs(HEADER_READ_TIMEOUT)),
            ("--request-timeout", secs(REQUEST_TIMEOUT)),
            ("--max-body-bytes", MAX_BODY_BYTES.to_string()),
            ("--max-connections", self.max_connections().to_string()),
            (
                "--max-concurrent-streams",
                MAX_CONCURRENT_STREAMS.to_string(),
            ),
            ("--shutdown-grace", "5s".to_owned()),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_owned(), value])
        .collect()
    }
}
