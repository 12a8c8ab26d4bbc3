//! Which config of a multi-platform image to use. The kubelet on each node
//! pulls its own platform, but the webhook writes one command for all of
//! them: when the platforms agree on what runs (Entrypoint, Cmd, PATH,
//! WorkingDir) any
//! will do; when they disagree, the `--platform` one is used and the
//! difference is reported, so that the refusal or warning can say so.

use std::fmt::Write as _;

use crate::config::Platform;
use crate::manifest::RunConfig;

pub(crate) struct PlatformConfig {
    pub platform: Platform,
    pub config: RunConfig,
}

/// The config to use and, when the platforms disagree, how. `Err` when they
/// disagree and `wanted` is not among them (the message lists what is).
pub(crate) fn choose(
    wanted: &Platform,
    configs: Vec<PlatformConfig>,
) -> Result<(RunConfig, Option<String>), String> {
    let chosen = configs
        .iter()
        .position(|candidate| &candidate.platform == wanted);
    let runs_the_same = |a: &RunConfig, b: &RunConfig| {
        a.entrypoint == b.entrypoint
            && a.cmd == b.cmd
            && a.path == b.path
            && a.working_dir == b.working_dir
    };
    let agree = configs
        .windows(2)
        .all(|pair| runs_the_same(&pair[0].config, &pair[1].config));
    let Some(chosen) = chosen.or(if agree { Some(0) } else { None }) else {
        let present: Vec<String> = configs.iter().map(|c| c.platform.to_string()).collect();
        return Err(format!(
            "its platforms disagree on Entrypoint, Cmd, PATH or WorkingDir, and it has no {wanted} \
             (--platform) to choose by; it has {}",
            present.join(", ")
        ));
    };
    if agree {
        let config = configs.into_iter().nth(chosen).map(|c| c.config);
        return Ok((config.unwrap_or_default(), None));
    }
    let used = &configs[chosen];
    let mut text = format!(
        "the image's platforms disagree on what runs; the config of {} (--platform) was used:",
        used.platform
    );
    let mut first = true;
    for other in configs
        .iter()
        .filter(|c| !runs_the_same(&c.config, &used.config))
    {
        let mut differences = Vec::new();
        if other.config.entrypoint != used.config.entrypoint {
            differences.push(format!(
                "Entrypoint {} (not {})",
                list(&other.config.entrypoint),
                list(&used.config.entrypoint)
            ));
        }
        if other.config.cmd != used.config.cmd {
            differences.push(format!(
                "Cmd {} (not {})",
                list(&other.config.cmd),
                list(&used.config.cmd)
            ));
        }
        if other.config.path != used.config.path {
            differences.push(format!(
                "PATH {} (not {})",
                path(other.config.path.as_deref()),
                path(used.config.path.as_deref())
            ));
        }
        if other.config.working_dir != used.config.working_dir {
            differences.push(format!(
                "WorkingDir {} (not {})",
                path(other.config.working_dir.as_deref()),
                path(used.config.working_dir.as_deref())
            ));
        }
        let separator = if first { " " } else { "; " };
        first = false;
        let _ = write!(
            text,
            "{separator}{} has {}",
            other.platform,
            differences.join(", ")
        );
    }
    let config = configs.into_iter().nth(chosen).map(|c| c.config);
    Ok((config.unwrap_or_default(), Some(text)))
}

fn list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| format!("{items:?}"))
}

fn path(path: Option<&str>) -> String {
    path.map_or_else(|| "unset".to_owned(), |path| format!("{path:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(text: &str) -> Platform {
        text.parse().unwrap()
    }

    fn at(text: &str, entrypoint: &[&str], path: Option<&str>) -> PlatformConfig {
        PlatformConfig {
            platform: platform(text),
            config: RunConfig {
                entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
                path: path.map(str::to_owned),
                user: Some(text.to_owned()),
                ..RunConfig::default()
            },
        }
    }

    #[test]
    fn agreeing_platforms_use_the_wanted_one_or_any() {
        let (config, disagreement) = choose(
            &platform("linux/arm64"),
            vec![
                at("linux/amd64", &["/a"], None),
                at("linux/arm64/v8", &["/a"], None),
            ],
        )
        .unwrap();
        assert_eq!(disagreement, None);
        assert_eq!(config.user.as_deref(), Some("linux/arm64/v8"));

        let (config, disagreement) = choose(
            &platform("linux/s390x"),
            vec![at("linux/amd64", &["/a"], None)],
        )
        .unwrap();
        assert_eq!(disagreement, None);
        assert_eq!(config.entrypoint, ["/a"]);
    }

    #[test]
    fn disagreeing_platforms_use_the_wanted_one_and_say_how() {
        let (config, disagreement) = choose(
            &platform("linux/amd64"),
            vec![
                at("linux/arm64", &["/b"], Some("/bin")),
                at("linux/amd64", &["/a"], Some("/bin")),
                at("linux/386", &["/a"], Some("/sbin")),
            ],
        )
        .unwrap();
        assert_eq!(config.entrypoint, ["/a"]);
        assert_eq!(
            disagreement.unwrap(),
            "the image's platforms disagree on what runs; the config of linux/amd64 \
             (--platform) was used: linux/arm64/v8 has Entrypoint [\"/b\"] (not [\"/a\"]); \
             linux/386 has PATH \"/sbin\" (not \"/bin\")"
        );
    }

    #[test]
    fn disagreeing_platforms_without_the_wanted_one_fail() {
        let error = choose(
            &platform("linux/amd64"),
            vec![
                at("linux/arm64", &["/b"], None),
                at("linux/s390x", &["/a"], None),
            ],
        )
        .unwrap_err();
        assert!(error.contains("no linux/amd64 (--platform)"), "{error}");
        assert!(error.contains("linux/arm64/v8, linux/s390x"), "{error}");
    }

    #[test]
    fn platforms_that_disagree_only_on_working_dir_disagree() {
        let mut amd64 = at("linux/amd64", &["/a"], None);
        amd64.config.working_dir = Some("/srv".into());
        let arm64 = at("linux/arm64", &["/a"], None);
        let (config, disagreement) = choose(&platform("linux/amd64"), vec![arm64, amd64]).unwrap();
        assert_eq!(config.working_dir.as_deref(), Some("/srv"));
        assert_eq!(
            disagreement.unwrap(),
            "the image's platforms disagree on what runs; the config of linux/amd64 \
             (--platform) was used: linux/arm64/v8 has WorkingDir unset (not \"/srv\")"
        );
    }
}
