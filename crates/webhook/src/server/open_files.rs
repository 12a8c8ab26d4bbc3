//! The admission connection cap, fitted under the open-file limit.

use super::ConnectionLimits;

/// File descriptors kept free beyond the two connection caps: listeners,
/// certificate files read at handshakes, the Kubernetes API client, stdio,
/// and each connection refused at the cap (accepted, then closed).
const FD_RESERVE: u64 = 64;

/// Lowers the admission connection cap when the open-file limit cannot hold
/// both caps: past that limit accept() fails with EMFILE, and so does every
/// other file this process opens (certificate reloads, the API client),
/// while the cap refuses only the connections beyond it.
pub(super) fn fit_to_open_files_limit(
    mut limits: ConnectionLimits,
    soft_limit: Option<u64>,
) -> ConnectionLimits {
    let Some(soft_limit) = soft_limit else {
        return limits;
    };
    let others = u64::from(limits.admin_max_connections) + FD_RESERVE;
    if u64::from(limits.max_connections) + others <= soft_limit {
        return limits;
    }
    let fitted = u32::try_from(soft_limit.saturating_sub(others).max(1))
        .unwrap_or(u32::MAX)
        .min(limits.max_connections);
    tracing::warn!(
        open_files_limit = soft_limit,
        max_connections = limits.max_connections,
        admin_max_connections = limits.admin_max_connections,
        lowered_to = fitted,
        "the open-file limit (RLIMIT_NOFILE) cannot hold --max-connections plus --admin-max-connections plus {FD_RESERVE} spare descriptors: \
         lowering --max-connections; raise the limit of the container runtime or lower LANDGATE_MAX_CONNECTIONS"
    );
    limits.max_connections = fitted;
    limits
}

/// The soft RLIMIT_NOFILE; `None` if unlimited or unknown (not Linux).
pub(super) fn open_files_soft_limit() -> Option<u64> {
    parse_open_files_limit(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

/// Reads the soft limit from the "Max open files" line of /proc/PID/limits.
fn parse_open_files_limit(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits(max_connections: u32, admin_max_connections: u32) -> ConnectionLimits {
        ConnectionLimits {
            handshake_timeout: Duration::from_secs(10),
            first_request_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            http2_keepalive_interval: Some(Duration::from_secs(30)),
            http2_keepalive_timeout: Duration::from_secs(10),
            max_concurrent_streams: 100,
            max_connections,
            admin_max_connections,
        }
    }

    #[test]
    fn reads_the_soft_open_files_limit() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max processes             63711                63711                processes \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_files_limit(text), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_files_limit(unlimited), None);
        assert_eq!(parse_open_files_limit(""), None);
    }

    #[test]
    fn connection_cap_fits_under_the_open_files_limit() {
        // containerd 2 leaves containers at the systemd default: soft 1024.
        let fitted = fit_to_open_files_limit(limits(1024, 64), Some(1024));
        assert_eq!(fitted.max_connections, 1024 - 64 - FD_RESERVE as u32);
        assert_eq!(fitted.admin_max_connections, 64);
        // Room enough, or no limit known: unchanged.
        assert_eq!(
            fit_to_open_files_limit(limits(1024, 64), Some(1_048_576)),
            limits(1024, 64)
        );
        assert_eq!(
            fit_to_open_files_limit(limits(1024, 64), None),
            limits(1024, 64)
        );
        // Never below one connection.
        assert_eq!(
            fit_to_open_files_limit(limits(1024, 64), Some(10)).max_connections,
            1
        );
    }
}
