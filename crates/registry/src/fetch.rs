//! The round trips to a registry (a manifest, a config blob), checked, and
//! what their failures mean for the pod ([`LookupFailure`]).
//!
//! Every body is read through [`read_capped`]: a registry decides how much
//! it sends, and the webhook's memory must not be its to decide. No body a
//! registry sends reaches a message: a redirect or a token realm could point
//! the webhook at a service inside the cluster, and its answer must not be
//! echoed to the tenant. Status codes and registry error codes are.

use std::collections::HashMap;

use landgate_engine::image::LookupFailure;
use oci_client::Reference;
use reqwest::header::{ACCEPT, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode, Url};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::challenge;
use crate::clients::{Authorization, Clients, Tokens};
use crate::credentials::Credential;
use crate::manifest::MANIFEST_MEDIA_TYPES;

/// An image config is a few kilobytes (a long history makes it tens); a
/// registry that sends more is not sending a config.
const CONFIG_LIMIT: usize = 4 << 20;

/// A manifest lists layers (an index, platforms): real ones are kilobytes,
/// the distribution spec's own suggested limit is 4 MiB.
const MANIFEST_LIMIT: usize = 4 << 20;

/// Token responses are a JWT or two (cloud registries' run to a few KiB).
const TOKEN_LIMIT: usize = 256 << 10;

/// An error body is read only for its `errors[].code`s.
const ERROR_LIMIT: usize = 64 << 10;

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

/// One registry client, with one credential (or none) and its tokens.
pub(crate) struct Registry<'a> {
    pub clients: &'a Clients,
    pub tokens: &'a Tokens,
    pub credential: Option<&'a Credential>,
}

impl Registry<'_> {
    /// The manifest `reference` names (by digest when it has one, else by
    /// tag), and the sha256 digest of its bytes. A digest-pinned reference
    /// whose bytes hash to anything else fails `Invalid`: a registry does
    /// not get to swap what a digest pins.
    pub async fn manifest(&self, reference: &Reference) -> Result<(Vec<u8>, String), Failure> {
        let (what, name) = match reference.digest() {
            Some(digest) => (
                format!("manifest {}@{digest}", reference.repository()),
                digest,
            ),
            None => {
                let tag = reference.tag().unwrap_or("latest");
                (format!("manifest {}:{tag}", reference.repository()), tag)
            }
        };
        let context = format!("cannot get {what} from registry {}", reference.registry());
        if let Some(pinned) = reference.digest()
            && !pinned.starts_with("sha256:")
        {
            return Err(Failure::invalid(format!(
                "{context}: only sha256 digests are supported"
            )));
        }
        let url = self.url(reference, "manifests", name)?;
        let bytes = self
            .get(
                reference,
                url,
                &MANIFEST_MEDIA_TYPES.join(", "),
                MANIFEST_LIMIT,
                "manifest",
            )
            .await
            .map_err(|failure| failure.context(&context))?;
        let digest = sha256(&bytes);
        if let Some(pinned) = reference.digest()
            && pinned != digest
        {
            return Err(Failure::invalid(format!(
                "{context}: the registry answered with a manifest whose sha256 is {digest}"
            )));
        }
        Ok((bytes, digest))
    }

    /// The config blob `digest` of `reference`'s repository, its bytes
    /// checked against the digest.
    pub async fn config(&self, reference: &Reference, digest: &str) -> Result<Vec<u8>, Failure> {
        let context = format!(
            "cannot get config {digest} of {} from registry {}",
            reference.repository(),
            reference.registry()
        );
        if !digest.starts_with("sha256:") {
            return Err(Failure::invalid(format!(
                "{context}: only sha256 digests are supported"
            )));
        }
        let url = self.url(reference, "blobs", digest)?;
        let bytes = self
            .get(reference, url, "*/*", CONFIG_LIMIT, "image config")
            .await
            .map_err(|failure| failure.context(&context))?;
        let actual = sha256(&bytes);
        if actual != digest {
            return Err(Failure::invalid(format!(
                "{context}: the content does not match its digest (its sha256 is {actual})"
            )));
        }
        Ok(bytes)
    }

    /// `<scheme>://<registry>/v2/<repository>/<kind>/<name>`.
    fn url(&self, reference: &Reference, kind: &str, name: &str) -> Result<Url, Failure> {
        let registry = reference.resolve_registry();
        let text = format!(
            "{}://{registry}/v2/{}/{kind}/{name}",
            self.clients.scheme_for(registry),
            reference.repository()
        );
        Url::parse(&text).map_err(|error| Failure::invalid(format!("not a valid URL ({error})")))
    }

    /// GETs `url`, meeting one authentication challenge on the way: a 401
    /// is answered by negotiating (a token, or basic) and asking again once,
    /// which also renews an expired token.
    async fn get(
        &self,
        reference: &Reference,
        url: Url,
        accept: &str,
        limit: usize,
        what: &str,
    ) -> Result<Vec<u8>, Failure> {
        let key = format!(
            "{}/{}",
            reference.resolve_registry(),
            reference.repository()
        );
        let mut negotiated = false;
        loop {
            let authorization = self.tokens_lock().get(&key).cloned();
            let mut request = self.clients.http().get(url.clone()).header(ACCEPT, accept);
            request = match (&authorization, self.credential) {
                (Some(Authorization::Bearer(token)), _) => request.bearer_auth(token),
                (Some(Authorization::Basic), Some(credential)) => {
                    request.basic_auth(credential.username(), Some(credential.password()))
                }
                _ => request,
            };
            let response = request.send().await.map_err(|error| transport(&error))?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !negotiated {
                let challenge = response
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned);
                drop(response);
                let authorization = self.negotiate(reference, challenge.as_deref()).await?;
                self.tokens_lock().insert(key.clone(), authorization);
                negotiated = true;
                continue;
            }
            if !status.is_success() {
                return Err(refused(response).await);
            }
            return read_capped(response, limit, what).await;
        }
    }

    /// What the registry's challenge asks for: the credential as is
    /// (basic), or a token from the token service it names (bearer).
    async fn negotiate(
        &self,
        reference: &Reference,
        challenge: Option<&str>,
    ) -> Result<Authorization, Failure> {
        use LookupFailure::{Unauthorized, Unreachable};
        let unauthorized = || {
            Failure::new(
                Unauthorized,
                "unauthorized (HTTP 401): credentials missing or refused",
            )
        };
        let Some(challenge) = challenge.map(challenge::parse) else {
            return Err(unauthorized());
        };
        match challenge.scheme.as_str() {
            "basic" if self.credential.is_some() => return Ok(Authorization::Basic),
            "basic" => return Err(unauthorized()),
            "bearer" => {}
            other => {
                return Err(Failure::new(
                    Unauthorized,
                    format!(
                        "the registry asks for {other} authentication, which landgate does not speak"
                    ),
                ));
            }
        }
        let Some(mut realm) = challenge
            .params
            .get("realm")
            .and_then(|realm| Url::parse(realm).ok())
        else {
            return Err(Failure::invalid(
                "the registry's bearer challenge names no valid token service (realm)",
            ));
        };
        // A credential goes to the token service: over https, unless the
        // registry itself was declared plain HTTP.
        let registry_scheme = self.clients.scheme_for(reference.resolve_registry());
        if realm.scheme() != "https" && !(realm.scheme() == "http" && registry_scheme == "http") {
            return Err(Failure::invalid(format!(
                "the registry's token service is not https (it is {})",
                realm.scheme()
            )));
        }
        {
            let mut query = realm.query_pairs_mut();
            query.append_pair(
                "scope",
                &format!("repository:{}:pull", reference.repository()),
            );
            if let Some(service) = challenge.params.get("service") {
                query.append_pair("service", service);
            }
        }
        let mut request = self.clients.http().get(realm);
        if let Some(credential) = self.credential {
            request = request.basic_auth(credential.username(), Some(credential.password()));
        }
        let response = request
            .send()
            .await
            .map_err(|error| transport(&error).context("the registry's token service"))?;
        let status = response.status();
        if !status.is_success() {
            let cause = match status.as_u16() {
                401 | 403 => Unauthorized,
                _ => Unreachable,
            };
            return Err(Failure::new(
                cause,
                format!(
                    "the registry's token service refused (HTTP {})",
                    status.as_u16()
                ),
            ));
        }
        let bytes = read_capped(response, TOKEN_LIMIT, "token response")
            .await
            .map_err(|failure| failure.context("the registry's token service"))?;
        #[derive(Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let token = serde_json::from_slice::<TokenResponse>(&bytes)
            .ok()
            .and_then(|answer| answer.token.or(answer.access_token))
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                Failure::invalid("the registry's token service answered without a token")
            })?;
        Ok(Authorization::Bearer(token))
    }

    fn tokens_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Authorization>> {
        // Each change is one insert: a poisoned lock is still good to use.
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// The body, refused past `limit` bytes: at once when the registry
/// announces more, else as soon as more has arrived.
async fn read_capped(mut response: Response, limit: usize, what: &str) -> Result<Vec<u8>, Failure> {
    let too_large = || {
        Failure::invalid(format!(
            "the {what} is larger than {}",
            if limit >= 1 << 20 {
                format!("{} MiB", limit >> 20)
            } else {
                format!("{} KiB", limit >> 10)
            }
        ))
    };
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| transport(&error))? {
        if bytes.len() + chunk.len() > limit {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// What a non-2xx answer means for the pod: its status and, from the
/// distribution spec's error body, the registry's error codes; never the
/// body's text.
async fn refused(response: Response) -> Failure {
    use LookupFailure::{Invalid, NotFound, Unauthorized, Unreachable};
    let status = response.status().as_u16();
    let codes = read_capped(response, ERROR_LIMIT, "error body")
        .await
        .map(|body| error_codes(&body))
        .unwrap_or_default();
    let by_code = codes.iter().find_map(|code| match code.as_str() {
        "MANIFEST_UNKNOWN"
        | "NAME_UNKNOWN"
        | "BLOB_UNKNOWN"
        | "MANIFEST_BLOB_UNKNOWN"
        | "NOT_FOUND" => Some(NotFound),
        "UNAUTHORIZED" | "DENIED" => Some(Unauthorized),
        "NAME_INVALID"
        | "TAG_INVALID"
        | "DIGEST_INVALID"
        | "MANIFEST_INVALID"
        | "MANIFEST_UNVERIFIED"
        | "UNSUPPORTED" => Some(Invalid),
        _ => None,
    });
    let cause = by_code.unwrap_or(match status {
        401 | 403 => Unauthorized,
        404 => NotFound,
        _ => Unreachable,
    });
    let mut message = format!("HTTP {status}");
    if !codes.is_empty() {
        message = format!("{message} ({})", codes.join(", "));
    }
    if cause == Unauthorized {
        message = format!("unauthorized ({message}): credentials missing or refused");
    }
    Failure::new(cause, message)
}

/// The `errors[].code`s of a distribution-spec error body that look like
/// codes (upper case and `_`, short): anything else could be a message.
fn error_codes(body: &[u8]) -> Vec<String> {
    #[derive(Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        code: String,
    }
    let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else {
        return Vec::new();
    };
    envelope
        .errors
        .into_iter()
        .map(|entry| entry.code)
        .filter(|code| {
            (1..=40).contains(&code.len())
                && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
        })
        .take(4)
        .collect()
}

/// A request that got no answer: refused, TLS, timeout, a redirect not
/// followed. The URL is left out (a redirect chose it); the causes say why.
fn transport(error: &reqwest::Error) -> Failure {
    let cause = if error.is_decode() {
        LookupFailure::Invalid
    } else {
        LookupFailure::Unreachable
    };
    Failure::new(cause, chain(error))
}

/// An error and its causes on one line (reqwest's own message is only
/// "error sending request"; the cause says refused, TLS, timeout).
fn chain(error: &reqwest::Error) -> String {
    let mut parts = vec![without_url(error)];
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

fn without_url(error: &reqwest::Error) -> String {
    let text = error.to_string();
    match error.url() {
        Some(url) => text.replace(&format!(" for url ({url})"), ""),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_and_messages_are_not() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"secret internal text"},
            {"code":"the admin password is hunter2"},{"code":"DENIED"}]}"#;
        assert_eq!(error_codes(body), ["MANIFEST_UNKNOWN", "DENIED"]);
        assert!(error_codes(b"<html>internal dashboard</html>").is_empty());
    }
}
