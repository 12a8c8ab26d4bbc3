//! The `WWW-Authenticate` challenge a registry answers 401 with (RFC 7235;
//! the token flow is Docker's distribution "token authentication" spec).

use std::collections::HashMap;

/// One challenge: its scheme, lower case, and its parameters (names lower
/// case, values unquoted).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: HashMap<String, String>,
}

/// The first challenge of the header. Registries send one; a header that
/// does not parse yields what was read up to the problem.
pub(crate) fn parse(header: &str) -> Challenge {
    let header = header.trim();
    let (scheme, mut rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = HashMap::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let name = name.trim();
        // A name with a space in it is the scheme of a second challenge.
        if name.is_empty() || name.contains(' ') {
            break;
        }
        let after = after.trim_start();
        let value;
        if let Some(quoted) = after.strip_prefix('"') {
            let mut text = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((at, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            text.push(escaped);
                        }
                    }
                    '"' => {
                        end = Some(at + 1);
                        break;
                    }
                    c => text.push(c),
                }
            }
            let Some(end) = end else { break };
            value = text;
            rest = &quoted[end..];
        } else {
            let end = after.find(',').unwrap_or(after.len());
            value = after[..end].trim().to_owned();
            rest = &after[end..];
        }
        params.insert(name.to_ascii_lowercase(), value);
    }
    Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_and_basic_challenges() {
        let challenge = parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull,push""#,
        );
        assert_eq!(challenge.scheme, "bearer");
        assert_eq!(challenge.params["realm"], "https://auth.docker.io/token");
        assert_eq!(challenge.params["service"], "registry.docker.io");
        assert_eq!(
            challenge.params["scope"],
            "repository:library/ubuntu:pull,push"
        );

        let challenge = parse(r#"Basic realm="Registry \"realm\"", charset=UTF-8"#);
        assert_eq!(challenge.scheme, "basic");
        assert_eq!(challenge.params["realm"], "Registry \"realm\"");
        assert_eq!(challenge.params["charset"], "UTF-8");

        assert!(parse("Basic").params.is_empty());
        assert!(parse(r#"Bearer realm="unterminated"#).params.is_empty());
    }
}
