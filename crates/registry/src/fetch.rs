//! The round trips to a registry (a manifest, a config blob), checked, and
//! what their failures mean for the pod ([`LookupFailure`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use landgate_engine::image::LookupFailure;
use oci_client::Reference;
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use sha2::{Digest as _, Sha256};

use crate::manifest::MANIFEST_MEDIA_TYPES;

/// An image config is a few kilobytes (a long history makes it tens); a
/// registry that sends more is not sending a config.
const CONFIG_LIMIT: usize = 4 << 20;

/// Why a lookup failed: the cause, and what happened for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub cause: LookupFailure,
    pub message: String,
}

impl Failure {
    pub fn new(cause: LookupFailure, message: impl Into<String>) -> Self {
        Self {
            cause,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(LookupFailure::Invalid, message)
    }

    /// The same failure, its message prefixed with where it happened.
    pub fn context(self, prefix: impl std::fmt::Display) -> Self {
        Self {
            cause: self.cause,
            message: format!("{prefix}: {}", self.message),
        }
    }
}

/// One registry, through one client and credential.
pub(crate) struct Registry<'a> {
    pub client: &'a oci_client::Client,
    pub auth: &'a RegistryAuth,
}

impl Registry<'_> {
    /// The manifest `reference` names (by digest when it has one, else by
    /// tag), and the sha256 digest of its bytes. A digest-pinned reference
    /// whose bytes hash to anything else fails `Invalid`: a registry does
    /// not get to swap what a digest pins.
    pub async fn manifest(&self, reference: &Reference) -> Result<(Vec<u8>, String), Failure> {
        let what = match reference.digest() {
            Some(digest) => format!("manifest {}@{digest}", reference.repository()),
            None => format!(
                "manifest {}:{}",
                reference.repository(),
                reference.tag().unwrap_or("latest")
            ),
        };
        let context = format!("cannot get {what} from registry {}", reference.registry());
        if let Some(pinned) = reference.digest()
            && !pinned.starts_with("sha256:")
        {
            return Err(Failure::invalid(format!(
                "{context}: only sha256 digests are supported"
            )));
        }
        let (bytes, _) = self
            .client
            .pull_manifest_raw(reference, self.auth, &MANIFEST_MEDIA_TYPES)
            .await
            .map_err(|error| classify(&error).context(&context))?;
        let digest = sha256(&bytes);
        if let Some(pinned) = reference.digest()
            && pinned != digest
        {
            return Err(Failure::invalid(format!(
                "{context}: the registry answered with a manifest whose sha256 is {digest}"
            )));
        }
        Ok((bytes.to_vec(), digest))
    }

    /// The config blob `digest` of `reference`'s repository (oci-client
    /// checks its bytes against the digest).
    pub async fn config(&self, reference: &Reference, digest: &str) -> Result<Vec<u8>, Failure> {
        let context = format!(
            "cannot get config {digest} of {} from registry {}",
            reference.repository(),
            reference.registry()
        );
        let mut out = Limited::default();
        // pull_blob, unlike the manifest calls, takes no credential: it uses
        // the one the client stores for the registry.
        self.client
            .store_auth_if_needed(reference.resolve_registry(), self.auth)
            .await;
        self.client
            .pull_blob(reference, digest, &mut out)
            .await
            .map_err(|error| classify(&error).context(&context))?;
        Ok(out.bytes)
    }
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// What an oci-client error means for the pod: 404s and unknown names are
/// `NotFound`, 401/403 `Unauthorized`, transport errors and other HTTP
/// errors `Unreachable`, content that does not parse or verify `Invalid`.
fn classify(error: &OciDistributionError) -> Failure {
    use LookupFailure::{Invalid, NotFound, Unauthorized, Unreachable};
    use OciDistributionError as E;
    match error {
        E::UnauthorizedError { .. } => Failure::new(
            Unauthorized,
            "unauthorized (HTTP 401): credentials missing or refused",
        ),
        E::AuthenticationFailure(reason) => Failure::new(
            Unauthorized,
            format!("the registry's token service refused: {}", excerpt(reason)),
        ),
        E::RegistryError { envelope, .. } => {
            let cause = envelope
                .errors
                .first()
                .map_or(Unreachable, |first| match &first.code {
                    OciErrorCode::ManifestUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::BlobUnknown
                    | OciErrorCode::ManifestBlobUnknown
                    | OciErrorCode::NotFound => NotFound,
                    OciErrorCode::Unauthorized | OciErrorCode::Denied => Unauthorized,
                    OciErrorCode::NameInvalid
                    | OciErrorCode::TagInvalid
                    | OciErrorCode::DigestInvalid
                    | OciErrorCode::ManifestInvalid
                    | OciErrorCode::ManifestUnverified
                    | OciErrorCode::Unsupported => Invalid,
                    _ => Unreachable,
                });
            let errors: Vec<String> = envelope
                .errors
                .iter()
                .map(|error| {
                    let code = serde_json::to_value(&error.code)
                        .ok()
                        .and_then(|code| code.as_str().map(str::to_owned))
                        .unwrap_or_else(|| format!("{:?}", error.code));
                    format!("{code}: {}", excerpt(&error.message))
                })
                .collect();
            Failure::new(cause, format!("the registry said {}", errors.join("; ")))
        }
        E::ServerError { code, message, .. } => {
            let cause = match code {
                401 | 403 => Unauthorized,
                404 => NotFound,
                _ => Unreachable,
            };
            Failure::new(cause, format!("HTTP {code}: {}", excerpt(message)))
        }
        E::RequestError(error) if error.is_decode() => Failure::invalid(chain(error)),
        E::RequestError(error) => Failure::new(Unreachable, chain(error)),
        E::DigestError(error) => {
            Failure::invalid(format!("the content does not match its digest ({error})"))
        }
        E::IoError(error) => Failure::invalid(error.to_string()),
        E::ManifestParsingError(_)
        | E::VersionedParsingError(_)
        | E::UnsupportedMediaTypeError(_)
        | E::UnsupportedSchemaVersionError(_)
        | E::ManifestEncodingError(_)
        | E::JsonError(_)
        | E::SpecViolationError(_)
        | E::RegistryTokenDecodeError(_)
        | E::HeaderValueError(_) => Failure::invalid(error.to_string()),
        other => Failure::new(Unreachable, other.to_string()),
    }
}

/// An error and its causes on one line (reqwest's own message is only
/// "error sending request for url"; the cause says refused, TLS, timeout).
fn chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// Registries answer errors with whole HTML pages at times.
fn excerpt(text: &str) -> String {
    const MAX: usize = 200;
    let text = text.trim();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Collects a blob and refuses more than [`CONFIG_LIMIT`] bytes.
#[derive(Default)]
struct Limited {
    bytes: Vec<u8>,
}

impl tokio::io::AsyncWrite for Limited {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.bytes.len() + buf.len() > CONFIG_LIMIT {
            return Poll::Ready(Err(io::Error::other(format!(
                "the image config is larger than {} MiB",
                CONFIG_LIMIT >> 20
            ))));
        }
        self.bytes.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
