//! Command line: `landgate-webhook serve` and `landgate-webhook preview`.
//! Every flag is also a `LANDGATE_*` environment variable.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::connect::PodReader;
use crate::events::Events;
use crate::images::{ImageLookups, PullSecrets};
use crate::namespaces::NamespaceCache;
use crate::preview::{self, OutputFormat};
use crate::server::{self, ConnectionLimits, ServerConfig};
use crate::tls::{self, CertFiles};
use landgate_engine::settings::Settings;
use landgate_registry::{Platform, Resolver, ResolverConfig};

#[derive(Debug, clap::Parser)]
#[command(
    name = "landgate-webhook",
    version,
    about = "Sandbox Kubernetes pods with Linux Landlock, at admission time"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Serve admission reviews over HTTPS (POST /mutate, POST /preview) and
    /// health/metrics over plain HTTP.
    // Boxed, both: large, and of different sizes.
    Serve(Box<ServeArgs>),
    /// Show what the webhook would do to manifests, without a cluster.
    Preview(Box<PreviewArgs>),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub settings: Settings,
    #[command(flatten)]
    pub resolve: ResolveArgs,
    /// Also use the pod's image pull secrets (its own and its
    /// ServiceAccount's) to look its images up, read through the API server
    /// with the webhook's ServiceAccount. Needs `get` on secrets and
    /// serviceaccounts: the `manifests/components/pull-secrets` component,
    /// a sensitive grant.
    #[arg(long, env = "LANDGATE_PULL_SECRETS", help_heading = "Image resolution")]
    pub pull_secrets: bool,
    /// Do not watch Namespaces: no namespace annotation sets anything (a
    /// development webhook without a cluster). By default the webhook
    /// watches Namespaces through the API server (in-cluster config or
    /// KUBECONFIG) and is not ready until it has listed them.
    #[arg(long, env = "LANDGATE_NO_NAMESPACE_WATCH", help_heading = "Mutation")]
    pub no_namespace_watch: bool,
    /// Do not publish Kubernetes Events about refused pods and pods
    /// admitted without a sandbox. They are published (best-effort, never
    /// delaying an answer) whenever the webhook talks to the API server:
    /// unless --no-namespace-watch without --pull-secrets. The replica that
    /// reports them is named by the POD_NAME environment variable (the
    /// downward API in manifests/base).
    #[arg(long, env = "LANDGATE_NO_EVENTS", help_heading = "Mutation")]
    pub no_events: bool,
}

/// How images are looked up in their registries (`serve` and `preview`).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Image resolution")]
pub struct ResolveArgs {
    /// Do not look images up: containers without `command` keep an unknown
    /// entrypoint (--unknown-entrypoint applies) and PATH falls back to
    /// --default-path. For offline previews.
    #[arg(long, env = "LANDGATE_NO_RESOLVE")]
    pub no_resolve: bool,
    /// The platform whose config is used when a multi-platform image's
    /// platforms disagree on Entrypoint, Cmd or PATH.
    #[arg(long, env = "LANDGATE_PLATFORM", default_value = "linux/amd64")]
    pub platform: Platform,
    /// Budget for looking up all of a pod's images; past it, the images not
    /// resolved count as unknown (--unknown-entrypoint applies). Keep it
    /// under --request-timeout.
    #[arg(long, env = "LANDGATE_RESOLVE_TIMEOUT", default_value = "2s", value_parser = parse_timeout)]
    pub resolve_timeout: Duration,
    /// How long a tag's digest is trusted before the registry is asked again.
    #[arg(long, env = "LANDGATE_TAG_TTL", default_value = "5m", value_parser = parse_duration)]
    pub tag_ttl: Duration,
    /// Image configs (by digest) and tags kept in memory, each.
    #[arg(long, env = "LANDGATE_IMAGE_CACHE_ENTRIES", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub image_cache_entries: u32,
    /// A Docker config.json (`auths`) with registry credentials, used when
    /// no pull secret of the pod matches.
    #[arg(long, env = "LANDGATE_REGISTRY_CONFIG")]
    pub registry_config: Option<PathBuf>,
    /// A PEM bundle of CAs trusted for registries, in addition to the
    /// system's.
    #[arg(long, env = "LANDGATE_REGISTRY_CA")]
    pub registry_ca: Option<PathBuf>,
    /// Registries (host[:port], as images name them) spoken to over plain
    /// HTTP (comma-separated); every other registry is HTTPS.
    #[arg(long, env = "LANDGATE_INSECURE_REGISTRIES", value_delimiter = ',')]
    pub insecure_registries: Vec<String>,
}

impl ResolveArgs {
    /// The resolver, or `None` under --no-resolve.
    pub fn resolver(&self) -> anyhow::Result<Option<Resolver>> {
        if self.no_resolve {
            return Ok(None);
        }
        let config = ResolverConfig {
            platform: self.platform.clone(),
            tag_ttl: self.tag_ttl,
            cache_entries: self.image_cache_entries as usize,
            timeout: self.resolve_timeout,
            docker_config: self.registry_config.clone(),
            extra_ca: self.registry_ca.clone(),
            insecure_registries: self.insecure_registries.clone(),
        };
        // The message names the file and what is wrong with it.
        Resolver::new(config)
            .map(Some)
            .map_err(|err| anyhow::anyhow!("{err}"))
    }
}

#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Listeners")]
pub struct ListenArgs {
    /// HTTPS address for admission reviews and previews.
    #[arg(long, env = "LANDGATE_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Plain HTTP address for /healthz, /readyz and /metrics.
    #[arg(long, env = "LANDGATE_ADMIN_LISTEN", default_value = "0.0.0.0:8080")]
    pub admin_listen: SocketAddr,
}

#[derive(Debug, clap::Args)]
#[command(next_help_heading = "TLS")]
pub struct TlsArgs {
    /// PEM certificate chain; re-read when it changes on disk.
    #[arg(
        long,
        env = "LANDGATE_TLS_CERT",
        required_unless_present = "dev_certs",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert; re-read when it changes on disk.
    #[arg(long, env = "LANDGATE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Generate a throw-away CA and serving certificate (localhost, 127.0.0.1,
    /// landgate.landgate.svc) at start and print the CA bundle. Development only.
    #[arg(long, env = "LANDGATE_DEV_CERTS", conflicts_with_all = ["tls_cert", "tls_key"])]
    pub dev_certs: bool,
    /// Where --dev-certs writes ca.crt, tls.crt and tls.key.
    #[arg(long, env = "LANDGATE_DEV_CERTS_DIR", default_value = ".dev-certs")]
    pub dev_certs_dir: PathBuf,
}

#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitArgs {
    /// Largest request body accepted; larger ones get 413. AdmissionReviews
    /// carry the whole pod (etcd caps objects at 1.5 MiB).
    #[arg(long, env = "LANDGATE_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Per-request deadline (e.g. 3s, 500ms); keep it under the webhook's
    /// timeoutSeconds so the API server gets an answer, not a timeout.
    #[arg(long, env = "LANDGATE_REQUEST_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// How long SIGTERM waits for in-flight requests before closing.
    #[arg(long, env = "LANDGATE_SHUTDOWN_GRACE", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// A TLS handshake not finished in this time is dropped. 10s is what the
    /// API server allows itself (client-go's TLSHandshakeTimeout): waiting
    /// longer only serves clients that are not the API server.
    #[arg(long, env = "LANDGATE_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_timeout)]
    pub handshake_timeout: Duration,
    /// A connection must send the complete headers of its first request this
    /// long after the handshake, or it is closed (HTTP/1.1 and HTTP/2 alike).
    /// The API server sends its review as soon as it is connected, and gives
    /// up after timeoutSeconds (at most 30s, 5s in the manifests): 10s only
    /// catches clients that connect and wait.
    #[arg(long, env = "LANDGATE_FIRST_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_timeout)]
    pub first_request_timeout: Duration,
    /// HTTP/1.1: once a later request on a kept-alive connection has begun
    /// to arrive, its headers must be complete within this time (slowloris).
    /// The body is bounded by --request-timeout.
    #[arg(long, env = "LANDGATE_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_timeout)]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed
    /// (HTTP/2 with GOAWAY). Longer than the API server's own idle close
    /// (client-go keeps Go's IdleConnTimeout, 90s), so that the API server,
    /// not landgate, closes an idle connection: a close from this side can
    /// cross a review being sent, and Go does not retry a POST it has
    /// written.
    #[arg(long, env = "LANDGATE_IDLE_TIMEOUT", default_value = "2m", value_parser = parse_timeout)]
    pub idle_timeout: Duration,
    /// HTTP/2: PING a peer that sent nothing for this long (0 disables), to
    /// find dead peers (a node gone without closing its connections) sooner
    /// than TCP does. client-go pings from its side every 30s too.
    #[arg(long, env = "LANDGATE_HTTP2_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub http2_keepalive_interval: Duration,
    /// HTTP/2: a PING unanswered for this long closes the connection.
    #[arg(long, env = "LANDGATE_HTTP2_KEEPALIVE_TIMEOUT", default_value = "10s", value_parser = parse_timeout)]
    pub http2_keepalive_timeout: Duration,
    /// Connections open at once on the HTTPS port, handshakes included.
    /// Beyond it a new connection is accepted and closed at once (counted in
    /// landgate_connections_refused_total) while open ones are served. An
    /// API server keeps one or a few HTTP/2 connections per webhook, so 1024
    /// is far above legitimate use and still bounds file descriptors and
    /// memory. Lowered at start, with a warning, if the open-file limit
    /// cannot hold it.
    #[arg(long, env = "LANDGATE_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// HTTP/2 requests in flight per connection (SETTINGS_MAX_CONCURRENT_
    /// STREAMS); a client that opens more gets REFUSED_STREAM. 100 is the
    /// floor RFC 9113 recommends; Go's client opens another connection
    /// rather than fail when all streams of one are busy.
    #[arg(long, env = "LANDGATE_MAX_CONCURRENT_STREAMS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_streams: u32,
    /// Connections open at once on the admin port: the kubelet's probes and
    /// Prometheus need a handful.
    #[arg(long, env = "LANDGATE_ADMIN_MAX_CONNECTIONS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub admin_max_connections: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, env = "LANDGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax, e.g. info or landgate_webhook=debug).
    #[arg(long, env = "LANDGATE_LOG", default_value = "info")]
    pub log: String,
}

#[derive(Debug, clap::Args)]
pub struct PreviewArgs {
    /// Manifest file (YAML or JSON, multi-document); `-` reads stdin.
    #[arg(short = 'f', long = "filename", env = "LANDGATE_PREVIEW_FILE")]
    pub file: PathBuf,
    /// What to print.
    #[arg(short, long, env = "LANDGATE_PREVIEW_OUTPUT", value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
    /// The namespace layer to preview with, `KEY=VALUE` (comma-separated),
    /// e.g. `landgate.dev/enforcement=required,landgate.dev/profile=strict`,
    /// for every namespace; a Namespace object in the manifests sets its own.
    #[arg(long, env = "LANDGATE_PREVIEW_NAMESPACE_ANNOTATIONS", value_delimiter = ',', value_parser = parse_annotation)]
    pub namespace_annotations: Vec<(String, String)>,
    #[command(flatten)]
    pub settings: Settings,
    #[command(flatten)]
    pub resolve: ResolveArgs,
}

fn parse_annotation(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!(
            "{text:?} is not KEY=VALUE (e.g. landgate.dev/enforcement=required)"
        )),
    }
}

/// Like [`parse_duration`], refusing zero: a zero deadline would close every
/// connection at once.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        Duration::ZERO => Err(format!("{text:?}: a timeout must be longer than 0")),
        duration => Ok(duration),
    }
}

/// Parses `500ms`, `3s`, `2m` (or a bare number of seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: use e.g. 500ms, 3s or 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "" | "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number * 60)),
        _ => Err(format!("invalid duration unit in {text:?}: use ms, s or m")),
    }
}

impl Cli {
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(args) => serve(*args),
            Command::Preview(args) => run_preview(*args),
        }
    }
}

fn init_logging(log: &LogArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&log.log)
        .with_context(|| format!("invalid --log filter {:?}", log.log))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs {
        listen: ListenArgs {
            listen,
            admin_listen,
        },
        tls:
            TlsArgs {
                tls_cert,
                tls_key,
                dev_certs,
                dev_certs_dir,
            },
        limits:
            LimitArgs {
                max_body_bytes,
                request_timeout,
                shutdown_grace,
                handshake_timeout,
                first_request_timeout,
                header_read_timeout,
                idle_timeout,
                http2_keepalive_interval,
                http2_keepalive_timeout,
                max_connections,
                max_concurrent_streams,
                admin_max_connections,
            },
        log,
        settings,
        resolve,
        pull_secrets,
        no_namespace_watch,
        no_events,
    } = args;
    init_logging(&log)?;
    tls::install_crypto_provider();
    if resolve.resolve_timeout >= request_timeout {
        bail!(
            "--resolve-timeout ({:?}) must be shorter than --request-timeout ({request_timeout:?}): the API server must get an answer, not a timeout",
            resolve.resolve_timeout
        );
    }
    let resolver = resolve.resolver()?;
    if resolver.is_none() && pull_secrets {
        bail!("--pull-secrets needs image resolution: drop --no-resolve");
    }

    let cert_files = match (tls_cert, tls_key, dev_certs) {
        (Some(cert), Some(key), false) => CertFiles { cert, key },
        (None, None, true) => {
            let (files, ca_pem) = tls::write_dev_certs(&dev_certs_dir)
                .context("generating development certificates (--dev-certs)")?;
            println!(
                "landgate: development CA written to {} (trust it with curl --cacert):\n{ca_pem}",
                dev_certs_dir.join("ca.crt").display()
            );
            files
        }
        _ => bail!("pass both --tls-cert and --tls-key, or --dev-certs"),
    };
    let config = ServerConfig {
        listen,
        admin_listen,
        cert_files,
        max_body_bytes,
        request_timeout,
        shutdown_grace,
        connections: ConnectionLimits {
            handshake_timeout,
            first_request_timeout,
            header_read_timeout,
            idle_timeout,
            http2_keepalive_interval: (!http2_keepalive_interval.is_zero())
                .then_some(http2_keepalive_interval),
            http2_keepalive_timeout,
            max_concurrent_streams,
            max_connections,
            admin_max_connections,
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async {
        let client = match (no_namespace_watch, pull_secrets) {
            (true, false) => None,
            _ => Some(kube::Client::try_default().await.context(
                "connecting to the API server (in-cluster config or KUBECONFIG) for the Namespace watch and --pull-secrets; --no-namespace-watch runs without a cluster",
            )?),
        };
        let images = resolver.map(|resolver| {
            let secrets = client
                .clone()
                .filter(|_| pull_secrets)
                .map(PullSecrets::new);
            ImageLookups::new(resolver, secrets, resolve.resolve_timeout)
        });
        let events = match (&client, no_events) {
            (Some(client), false) => {
                let (events, publish) =
                    Events::start(client.clone(), std::env::var("POD_NAME").ok());
                tokio::spawn(publish);
                Some(events)
            }
            _ => None,
        };
        let namespaces = match (&client, no_namespace_watch) {
            (Some(client), false) => {
                let (cache, watch) = NamespaceCache::start(client.clone());
                tokio::spawn(watch);
                Some(cache)
            }
            _ => None,
        };
        let mut server = server::BoundServer::bind(config, settings)
            .await
            .context("landgate-webhook serve")?;
        if let Some(images) = images {
            server = server.with_images(images);
        }
        if let Some(namespaces) = namespaces {
            server = server.with_namespaces(namespaces);
        }
        if let Some(events) = events {
            server = server.with_events(events);
        }
        if let Some(client) = client {
            // Inside the review's own timeout, leaving time to answer.
            server = server.with_pods(PodReader::new(client, request_timeout / 2));
        }
        server
            .serve(shutdown_signal())
            .await
            .context("landgate-webhook serve")
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}

fn run_preview(args: PreviewArgs) -> anyhow::Result<()> {
    let PreviewArgs {
        file,
        output,
        namespace_annotations,
        settings,
        resolve,
    } = args;
    let namespace_layer: BTreeMap<String, String> = namespace_annotations.into_iter().collect();
    let input = if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the manifest from stdin")?;
        text
    } else {
        std::fs::read_to_string(&file)
            .with_context(|| format!("reading manifest {}", file.display()))?
    };
    // The message already names the object, container and field: print it
    // once, without an error chain that would repeat it.
    let manifest = preview::Manifest::parse(&input).map_err(|err| anyhow::anyhow!("{err}"))?;
    let images = match resolve.resolver()? {
        None => Default::default(),
        Some(resolver) => {
            tls::install_crypto_provider();
            let wanted = manifest.images();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the tokio runtime")?
                .block_on(ImageLookups::new(resolver, None, resolve.resolve_timeout).of(&wanted))
        }
    };
    let items = manifest
        .preview(&settings, &images, &|_| namespace_layer.clone())
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let mut rendered = preview::render(&items, output).map_err(|err| anyhow::anyhow!("{err}"))?;
    if !rendered.ends_with('\n') {
        rendered.push('\n');
    }
    print!("{rendered}");
    for item in &items {
        for warning in &item.warnings {
            eprintln!("Warning: {} {}: {warning}", item.kind, item.name);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_flag_has_an_env_var() {
        fn check(command: &clap::Command, path: &str) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" || arg.is_positional() {
                    continue;
                }
                assert!(
                    arg.get_env().is_some(),
                    "{path} --{id} has no LANDGATE_* env var"
                );
            }
            for sub in command.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        check(&Cli::command(), "landgate-webhook");
    }

    #[test]
    fn serve_needs_certificates() {
        let err = Cli::try_parse_from(["landgate-webhook", "serve"]).unwrap_err();
        assert!(err.to_string().contains("--tls-cert"), "{err}");
        assert!(Cli::try_parse_from(["landgate-webhook", "serve", "--dev-certs"]).is_ok());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_timeout("0s").is_err());
        assert_eq!(parse_timeout("300ms"), Ok(Duration::from_millis(300)));
    }

    #[test]
    fn connection_limits_have_defaults() {
        let Cli {
            command: Command::Serve(args),
        } = Cli::try_parse_from(["landgate-webhook", "serve", "--dev-certs"]).unwrap()
        else {
            panic!("serve parses");
        };
        let limits = args.limits;
        assert_eq!(limits.handshake_timeout, Duration::from_secs(10));
        assert_eq!(limits.first_request_timeout, Duration::from_secs(10));
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
        // Longer than client-go's 90s idle close: the API server closes first.
        assert!(limits.idle_timeout > Duration::from_secs(90));
        assert_eq!(limits.max_connections, 1024);
        assert_eq!(limits.max_concurrent_streams, 100);
        assert!(
            Cli::try_parse_from([
                "landgate-webhook",
                "serve",
                "--dev-certs",
                "--max-connections",
                "0"
            ])
            .is_err()
        );
        assert!(
            Cli::try_parse_from([
                "landgate-webhook",
                "serve",
                "--dev-certs",
                "--idle-timeout",
                "0"
            ])
            .is_err()
        );
    }
}
