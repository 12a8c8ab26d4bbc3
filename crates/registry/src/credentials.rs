//! Registry credentials, as a Docker `config.json` or an image pull Secret
//! holds them, and which of them an image's registry gets.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// Credentials by registry: the `auths` of a Docker `config.json`, the
/// payload of a `kubernetes.io/dockerconfigjson` Secret, or the map of a
/// legacy `kubernetes.io/dockercfg` one.
#[derive(Clone, Default)]
pub struct DockerConfig {
    entries: Vec<Entry>,
    /// Where the credentials came from (`Secret ns/name`), for messages.
    origin: Option<String>,
}

#[derive(Clone)]
struct Entry {
    /// Normalised: lower case, Docker Hub's aliases folded to `docker.io`.
    host: String,
    /// A repository prefix (`team` in `registry.example/team`), or empty.
    path: String,
    credential: Credential,
}

/// A username and password (or token) for HTTP basic authentication.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credential {
    username: String,
    password: String,
}

impl Credential {
    pub(crate) fn username(&self) -> &str {
        &self.username
    }

    pub(crate) fn password(&self) -> &str {
        &self.password
    }
}

/// Which credential a lookup used, without the credential: part of every
/// cache and in-flight key, so that an answer obtained with one credential
/// is never handed to a lookup made with another (or with none).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Fingerprint(String);

impl Fingerprint {
    pub(crate) fn of(credential: Option<&Credential>) -> Self {
        match credential {
            None => Self("anonymous".to_owned()),
            Some(Credential { username, password }) => {
                let mut hash = Sha256::new();
                hash.update(username.as_bytes());
                // The separator keeps ("ab", "c") and ("a", "bc") apart.
                hash.update([0]);
                hash.update(password.as_bytes());
                let hex: String = hash
                    .finalize()
                    .iter()
                    .map(|byte| format!("{byte:02x}"))
                    .collect();
                Self(format!("sha256:{hex}"))
            }
        }
    }
}

/// Why credentials could not be read. Never shows a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    #[error("{what} is not valid JSON: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: the entry for {host:?} {problem}")]
    Entry {
        what: &'static str,
        host: String,
        problem: String,
    },
    #[error("Secret {secret}: {problem}")]
    Secret { secret: String, problem: String },
}

type Parser = fn(&[u8]) -> Result<DockerConfig, CredentialsError>;

const CONFIG_JSON: &str = "the Docker config.json";
const DOCKERCFG: &str = "the legacy .dockercfg";

/// One registry's entry, in either format.
#[derive(Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

impl DockerConfig {
    /// A Docker `config.json`: `{"auths": {"<registry>": {"auth":
    /// "<base64 of user:password>"} | {"username": .., "password": ..}}}`.
    /// Entries with neither (credential helpers, identity tokens) are left
    /// out: their credentials are not in the file.
    pub fn from_json(bytes: &[u8]) -> Result<Self, CredentialsError> {
        #[derive(Deserialize)]
        struct ConfigJson {
            auths: Option<BTreeMap<String, AuthEntry>>,
        }
        let config: ConfigJson =
            serde_json::from_slice(bytes).map_err(|source| CredentialsError::Json {
                what: CONFIG_JSON,
                source,
            })?;
        Self::from_auths(CONFIG_JSON, config.auths.unwrap_or_default())
    }

    /// The legacy `.dockercfg` format: the `auths` map alone, at the top.
    pub fn from_dockercfg(bytes: &[u8]) -> Result<Self, CredentialsError> {
        let auths: BTreeMap<String, AuthEntry> =
            serde_json::from_slice(bytes).map_err(|source| CredentialsError::Json {
                what: DOCKERCFG,
                source,
            })?;
        Self::from_auths(DOCKERCFG, auths)
    }

    /// An image pull Secret: `kubernetes.io/dockerconfigjson` (key
    /// `.dockerconfigjson`) or `kubernetes.io/dockercfg` (key `.dockercfg`).
    pub fn from_secret(secret: &Secret) -> Result<Self, CredentialsError> {
        let name = format!(
            "{}/{}",
            secret
                .metadata
                .namespace
                .as_deref()
                .unwrap_or("<no namespace>"),
            secret.metadata.name.as_deref().unwrap_or("<no name>")
        );
        let fail = |problem: String| CredentialsError::Secret {
            secret: name.clone(),
            problem,
        };
        let (key, parse): (&str, Parser) = match secret.type_.as_deref() {
            Some("kubernetes.io/dockerconfigjson") => (".dockerconfigjson", Self::from_json),
            Some("kubernetes.io/dockercfg") => (".dockercfg", Self::from_dockercfg),
            other => {
                return Err(fail(format!(
                    "has type {}, not an image pull secret: use type \
                         kubernetes.io/dockerconfigjson (key .dockerconfigjson) or \
                         kubernetes.io/dockercfg (key .dockercfg)",
                    other.unwrap_or("<none>")
                )));
            }
        };
        let bytes = secret
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .ok_or_else(|| fail(format!("has no data key {key}")))?;
        let config = parse(&bytes.0).map_err(|error| fail(error.to_string()))?;
        Ok(config.with_origin(format!("Secret {name}")))
    }

    /// Names where these credentials came from (a file, a Secret) in the
    /// messages of lookups that used them.
    pub fn with_origin(self, origin: impl Into<String>) -> Self {
        Self {
            origin: Some(origin.into()),
            ..self
        }
    }

    fn from_auths(
        what: &'static str,
        auths: BTreeMap<String, AuthEntry>,
    ) -> Result<Self, CredentialsError> {
        let mut entries = Vec::new();
        for (key, entry) in auths {
            let fail = |problem: String| CredentialsError::Entry {
                what,
                host: key.clone(),
                problem,
            };
            let (host, path) = split_key(&key).map_err(fail)?;
            if let Some(credential) = read_entry(entry).map_err(fail)? {
                entries.push(Entry {
                    host,
                    path,
                    credential,
                });
            }
        }
        Ok(Self {
            entries,
            origin: None,
        })
    }

    /// True when no registry has credentials here.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// The credential for `repository` on `registry` (as an image reference
    /// names it): the entry with the longest matching repository prefix, the
    /// first in key order among equals.
    pub(crate) fn find(&self, registry: &str, repository: &str) -> Option<&Credential> {
        let host = normalise_host(registry);
        let mut best: Option<&Entry> = None;
        for entry in &self.entries {
            let path_matches = entry.path.is_empty()
                || repository == entry.path
                || repository
                    .strip_prefix(&entry.path)
                    .is_some_and(|rest| rest.starts_with('/'));
            if entry.host == host
                && path_matches
                && best.is_none_or(|best| entry.path.len() > best.path.len())
            {
                best = Some(entry);
            }
        }
        best.map(|entry| &entry.credential)
    }
}

/// Lists the registries, never the credentials.
impl fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|entry| {
                if entry.path.is_empty() {
                    entry.host.clone()
                } else {
                    format!("{}/{}", entry.host, entry.path)
                }
            }))
            .finish()
    }
}

/// A key as `docker login` writes it (`https://index.docker.io/v1/`,
/// `registry.example:5000`, `registry.example/team`) into host and
/// repository prefix.
fn split_key(key: &str) -> Result<(String, String), String> {
    let trimmed = key.trim();
    let lower = trimmed.to_ascii_lowercase();
    let without_scheme = ["https://", "http://"]
        .iter()
        .find(|scheme| lower.starts_with(*scheme))
        .map_or(trimmed, |scheme| &trimmed[scheme.len()..]);
    let (host, path) = without_scheme
        .split_once('/')
        .unwrap_or((without_scheme, ""));
    if host.is_empty() {
        return Err("names no registry host".to_owned());
    }
    let path = path.trim_matches('/');
    // Old clients logged in to `https://<registry>/v1/`: an API version, not
    // a repository.
    let path = if matches!(path, "v1" | "v2") {
        ""
    } else {
        path
    };
    Ok((normalise_host(host), path.to_owned()))
}

/// Docker Hub answers to several names; image references and config keys
/// use any of them.
fn normalise_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_owned()
        }
        _ => host,
    }
}

fn read_entry(entry: AuthEntry) -> Result<Option<Credential>, String> {
    if let Some(auth) = entry.auth.filter(|auth| !auth.trim().is_empty()) {
        // Docker writes padded standard base64; some tools leave the padding
        // off.
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let decoded = engine
            .decode(auth.trim())
            .map_err(|error| format!("has an \"auth\" that is not valid base64 ({error})"))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| "has an \"auth\" that does not decode to UTF-8 text".to_owned())?;
        let (username, password) = decoded.split_once(':').ok_or_else(|| {
            "has an \"auth\" that does not decode to username:password (no ':')".to_owned()
        })?;
        if username.is_empty() {
            return Err("has an \"auth\" with an empty username".to_owned());
        }
        return Ok(Some(Credential {
            username: username.to_owned(),
            password: password.to_owned(),
        }));
    }
    match (entry.username, entry.password) {
        (Some(username), Some(password)) if !username.is_empty() => {
            Ok(Some(Credential { username, password }))
        }
        (Some(username), _) if !username.is_empty() => {
            Err("has a \"username\" but no \"password\"".to_owned())
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn auth(user_pass: &str) -> String {
        STANDARD.encode(user_pass)
    }

    fn user_of(config: &DockerConfig, registry: &str, repository: &str) -> Option<String> {
        config
            .find(registry, repository)
            .map(|credential| format!("{}:{}", credential.username(), credential.password()))
    }

    fn secret(type_: &str, key: &str, payload: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("pull".into()),
                namespace: Some("team".into()),
                ..ObjectMeta::default()
            },
            type_: Some(type_.into()),
            data: Some(BTreeMap::from([(
                key.to_owned(),
                ByteString(payload.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        }
    }

    #[test]
    fn reads_auth_and_username_password() {
        let json = format!(
            r#"{{"auths": {{
                "registry.example:5000": {{"auth": "{}"}},
                "other.example": {{"username": "bob", "password": "pw:with:colons"}},
                "helper.example": {{}},
                "token.example": {{"identitytoken": "x"}}
            }}, "credsStore": "desktop"}}"#,
            auth("alice:secret")
        );
        let config = DockerConfig::from_json(json.as_bytes()).unwrap();
        assert_eq!(
            user_of(&config, "registry.example:5000", "app"),
            Some("alice:secret".into())
        );
        assert_eq!(
            user_of(&config, "other.example", "a/b"),
            Some("bob:pw:with:colons".into())
        );
        assert_eq!(user_of(&config, "helper.example", "app"), None);
        assert_eq!(user_of(&config, "token.example", "app"), None);
        // The port is part of the host.
        assert_eq!(user_of(&config, "registry.example", "app"), None);
        assert!(!format!("{config:?}").contains("secret"));
    }

    #[test]
    fn docker_hub_aliases_match_each_other() {
        for key in [
            "https://index.docker.io/v1/",
            "index.docker.io",
            "docker.io",
            "registry-1.docker.io",
            "HTTPS://Registry-1.Docker.IO/v2/",
        ] {
            let json = format!(r#"{{"auths": {{"{key}": {{"auth": "{}"}}}}}}"#, auth("u:p"));
            let config = DockerConfig::from_json(json.as_bytes()).unwrap();
            for registry in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
                assert_eq!(
                    user_of(&config, registry, "library/nginx"),
                    Some("u:p".into()),
                    "{key} for {registry}"
                );
            }
            assert_eq!(user_of(&config, "quay.io", "library/nginx"), None);
        }
    }

    #[test]
    fn longest_repository_prefix_wins() {
        let json = format!(
            r#"{{"auths": {{
                "registry.example": {{"auth": "{}"}},
                "registry.example/team": {{"auth": "{}"}}
            }}}}"#,
            auth("any:1"),
            auth("team:2")
        );
        let config = DockerConfig::from_json(json.as_bytes()).unwrap();
        assert_eq!(
            user_of(&config, "registry.example", "team/app"),
            Some("team:2".into())
        );
        assert_eq!(
            user_of(&config, "registry.example", "team"),
            Some("team:2".into())
        );
        assert_eq!(
            user_of(&config, "registry.example", "teamwork/app"),
            Some("any:1".into())
        );
    }

    #[test]
    fn both_secret_types() {
        let json = format!(
            r#"{{"auths": {{"registry.example": {{"auth": "{}"}}}}}}"#,
            auth("a:b")
        );
        let config = DockerConfig::from_secret(&secret(
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            &json,
        ))
        .unwrap();
        assert_eq!(
            user_of(&config, "registry.example", "x"),
            Some("a:b".into())
        );
        assert_eq!(config.origin(), Some("Secret team/pull"));

        let legacy = format!(
            r#"{{"https://index.docker.io/v1/": {{"auth": "{}", "email": "a@example.com"}}}}"#,
            auth("c:d")
        );
        let config =
            DockerConfig::from_secret(&secret("kubernetes.io/dockercfg", ".dockercfg", &legacy))
                .unwrap();
        assert_eq!(
            user_of(&config, "docker.io", "library/busybox"),
            Some("c:d".into())
        );
    }

    #[test]
    fn secret_errors_name_the_secret_and_the_fix() {
        let wrong_type = DockerConfig::from_secret(&secret("Opaque", ".dockerconfigjson", "{}"))
            .unwrap_err()
            .to_string();
        assert!(wrong_type.contains("Secret team/pull"), "{wrong_type}");
        assert!(wrong_type.contains("has type Opaque"), "{wrong_type}");
        assert!(
            wrong_type.contains("kubernetes.io/dockerconfigjson"),
            "{wrong_type}"
        );

        let wrong_key = DockerConfig::from_secret(&secret(
            "kubernetes.io/dockerconfigjson",
            ".dockercfg",
            "{}",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            wrong_key.contains("has no data key .dockerconfigjson"),
            "{wrong_key}"
        );

        let not_json = DockerConfig::from_secret(&secret(
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            "{",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            not_json.contains("Secret team/pull: the Docker config.json is not valid JSON"),
            "{not_json}"
        );
    }

    #[test]
    fn bad_auth_is_a_clear_error() {
        let bad_base64 =
            DockerConfig::from_json(br#"{"auths": {"registry.example": {"auth": "not base64!"}}}"#)
                .unwrap_err()
                .to_string();
        assert!(
            bad_base64.contains("the entry for \"registry.example\"")
                && bad_base64.contains("not valid base64"),
            "{bad_base64}"
        );

        let no_colon = format!(
            r#"{{"auths": {{"registry.example": {{"auth": "{}"}}}}}}"#,
            auth("justuser")
        );
        let no_colon = DockerConfig::from_json(no_colon.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(no_colon.contains("username:password"), "{no_colon}");

        let no_password =
            DockerConfig::from_json(br#"{"auths": {"r.example": {"username": "u"}}}"#)
                .unwrap_err()
                .to_string();
        assert!(no_password.contains("no \"password\""), "{no_password}");

        // Unpadded base64 is accepted.
        let unpadded = STANDARD.encode("ab:c").trim_end_matches('=').to_owned();
        let config = DockerConfig::from_json(
            format!(r#"{{"auths": {{"r.example": {{"auth": "{unpadded}"}}}}}}"#).as_bytes(),
        )
        .unwrap();
        assert_eq!(user_of(&config, "r.example", "x"), Some("ab:c".into()));
    }

    #[test]
    fn fingerprints_tell_credentials_apart() {
        let a = Credential {
            username: "ab".into(),
            password: "c".into(),
        };
        let b = Credential {
            username: "a".into(),
            password: "bc".into(),
        };
        assert_ne!(Fingerprint::of(Some(&a)), Fingerprint::of(Some(&b)));
        assert_ne!(Fingerprint::of(Some(&a)), Fingerprint::of(None));
        assert_eq!(Fingerprint::of(Some(&a)), Fingerprint::of(Some(&a.clone())));
    }
}
