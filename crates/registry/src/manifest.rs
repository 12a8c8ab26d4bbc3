//! Manifests, indexes and image configs, parsed from the bytes a registry
//! sent: only the fields resolution needs, each checked, with errors that say
//! which field was wrong.

use serde::Deserialize;

/// The media types asked for (`Accept`) and understood: OCI and Docker v2,
/// single image or multi-platform.
pub(crate) const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    OCI_MANIFEST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
];

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Config media types of container images; anything else (Helm charts,
/// WebAssembly modules, signatures) is an artifact no container runs.
const CONFIG_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Manifest {
    /// One platform's image: where its config is.
    Image { config_digest: String },
    /// A multi-platform image: its entries.
    Index { entries: Vec<IndexEntry> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub digest: String,
    /// `os/architecture[/variant]` as the index spells it, for messages.
    pub platform: String,
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    config: Option<RawDescriptor>,
    manifests: Option<Vec<RawDescriptor>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    platform: Option<RawPlatform>,
}

#[derive(Deserialize)]
struct RawPlatform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

pub(crate) fn parse_manifest(bytes: &[u8]) -> Result<Manifest, String> {
    let raw: RawManifest = serde_json::from_slice(bytes)
        .map_err(|error| format!("the manifest is not valid JSON ({error})"))?;
    match raw.schema_version {
        Some(2) => {}
        Some(1) => {
            return Err(
                "the manifest is Docker schema 1, which is deprecated and not supported: push the image again with a current client".to_owned(),
            );
        }
        other => {
            return Err(format!(
                "the manifest has schemaVersion {}, not 2",
                other.map_or_else(|| "<none>".to_owned(), |version| version.to_string())
            ));
        }
    }
    // mediaType is optional in OCI manifests: the fields tell then.
    let is_index = match raw.media_type.as_deref() {
        Some(OCI_INDEX | DOCKER_MANIFEST_LIST) => true,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
        Some(other) => {
            return Err(format!(
                "the manifest has media type {other}, not an image manifest or index"
            ));
        }
        None => raw.manifests.is_some(),
    };
    if is_index {
        // containerd runs a platform-less entry on any node and walks nested
        // indexes: landgate cannot say which config such an image runs, so
        // it refuses the index rather than guess.
        let entries = raw
            .manifests
            .ok_or("the index has no \"manifests\"")?
            .into_iter()
            .map(|entry| {
                if matches!(
                    entry.media_type.as_deref(),
                    Some(OCI_INDEX | DOCKER_MANIFEST_LIST)
                ) {
                    return Err(format!(
                        "the index nests another index ({}), which landgate does not resolve: \
                         list each platform's image manifest in the top-level index",
                        entry.digest
                    ));
                }
                let Some(RawPlatform {
                    os,
                    architecture,
                    variant,
                }) = entry.platform
                else {
                    return Err(format!(
                        "the index entry {} has no platform, so a node of any platform may run \
                         it: give every entry of the index its platform",
                        entry.digest
                    ));
                };
                let platform = match &variant {
                    Some(variant) if !variant.is_empty() => {
                        format!("{os}/{architecture}/{variant}")
                    }
                    _ => format!("{os}/{architecture}"),
                };
                Ok(IndexEntry {
                    digest: entry.digest,
                    platform,
                    os,
                    architecture,
                    variant,
                })
            })
            .collect::<Result<_, String>>()?;
        return Ok(Manifest::Index { entries });
    }
    let config = raw.config.ok_or("the manifest has no \"config\"")?;
    match config.media_type.as_deref() {
        Some(media_type) if CONFIG_MEDIA_TYPES.contains(&media_type) => {}
        other => {
            return Err(format!(
                "the manifest's config has media type {}: not a container image",
                other.unwrap_or("<none>")
            ));
        }
    }
    Ok(Manifest::Image {
        config_digest: config.digest,
    })
}

/// What an image config says runs, and where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RunConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub path: Option<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

pub(crate) fn parse_config(bytes: &[u8]) -> Result<RunConfig, String> {
    #[derive(Deserialize)]
    struct ImageConfigJson {
        os: Option<String>,
        config: Option<ContainerConfig>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct ContainerConfig {
        entrypoint: Option<Vec<String>>,
        cmd: Option<Vec<String>>,
        env: Option<Vec<String>>,
        working_dir: Option<String>,
        user: Option<String>,
    }
    let json: ImageConfigJson = serde_json::from_slice(bytes)
        .map_err(|error| format!("the image config is not valid JSON ({error})"))?;
    if let Some(os) = json.os.filter(|os| os != "linux") {
        return Err(format!("the image is built for {os}, not Linux"));
    }
    let Some(config) = json.config else {
        return Ok(RunConfig::default());
    };
    let non_empty = |value: Option<String>| value.filter(|value| !value.is_empty());
    Ok(RunConfig {
        entrypoint: config.entrypoint.unwrap_or_default(),
        cmd: config.cmd.unwrap_or_default(),
        // Like `docker run`, the last PATH= wins.
        path: config
            .env
            .unwrap_or_default()
            .into_iter()
            .rev()
            .find_map(|entry| entry.strip_prefix("PATH=").map(str::to_owned)),
        working_dir: non_empty(config.working_dir),
        user: non_empty(config.user),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_image_config() {
        let config = parse_config(
            br#"{"architecture":"amd64","os":"linux","config":{
                "Entrypoint":["/bin/tini","--"],"Cmd":null,
                "Env":["PATH=/a","HOME=/root","PATH=/usr/local/bin:/usr/bin"],
                "WorkingDir":"","User":"1000:1000"}}"#,
        )
        .unwrap();
        assert_eq!(
            config,
            RunConfig {
                entrypoint: vec!["/bin/tini".into(), "--".into()],
                cmd: vec![],
                path: Some("/usr/local/bin:/usr/bin".into()),
                working_dir: None,
                user: Some("1000:1000".into()),
            }
        );
        assert_eq!(
            parse_config(br#"{"os":"linux"}"#).unwrap(),
            RunConfig::default()
        );
        let error = parse_config(br#"{"config":{"Cmd":"sh"}}"#).unwrap_err();
        assert!(error.contains("not valid JSON"), "{error}");
        let error = parse_config(br#"{"os":"windows","config":{}}"#).unwrap_err();
        assert!(error.contains("built for windows, not Linux"), "{error}");
    }

    #[test]
    fn tells_indexes_from_images() {
        let index = parse_manifest(
            br#"{"schemaVersion":2,"manifests":[
                {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a",
                 "platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
                {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:b",
                 "platform":{"os":"unknown","architecture":"unknown"}}]}"#,
        )
        .unwrap();
        let Manifest::Index { entries } = index else {
            panic!("not an index: {index:?}");
        };
        assert_eq!(entries[0].platform, "linux/arm64/v8");
        assert_eq!(entries[1].platform, "unknown/unknown");

        let image = parse_manifest(
            br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
                "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:c"},
                "layers":[]}"#,
        )
        .unwrap();
        assert_eq!(
            image,
            Manifest::Image {
                config_digest: "sha256:c".into()
            }
        );
    }

    #[test]
    fn refuses_what_is_not_an_image() {
        for (bytes, expected) in [
            (&br#"{"schemaVersion":1,"name":"x"}"#[..], "schema 1"),
            (br#"not json"#, "not valid JSON"),
            (
                br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
                    "config":{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"sha256:c"}}"#,
                "not a container image",
            ),
            (
                br#"{"schemaVersion":2,"mediaType":"text/html"}"#,
                "media type text/html",
            ),
            (
                br#"{"schemaVersion":2,"manifests":[
                    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a",
                     "platform":{"os":"linux","architecture":"amd64"}},
                    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:b"}]}"#,
                "the index entry sha256:b has no platform",
            ),
            (
                br#"{"schemaVersion":2,"manifests":[
                    {"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:n",
                     "platform":{"os":"linux","architecture":"amd64"}}]}"#,
                "nests another index (sha256:n)",
            ),
        ] {
            let error = parse_manifest(bytes).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
    }
}
