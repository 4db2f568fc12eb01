//! The AWS settings of `s3://` addresses, found where the AWS CLI finds
//! them (see `docs/REMOTE.md`): the environment first, then the profile's
//! sections of the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`,
//! else `~/.aws/credentials`) and config file (`AWS_CONFIG_FILE`, else
//! `~/.aws/config`).

use std::path::{Path, PathBuf};

use ini::{Ini, ParseOption};
use modeltool_format::text::Escaped;

use super::s3::Config;
use crate::{LoadError, Result};

/// The region when no setting names one.
const DEFAULT_REGION: &str = "us-east-1";

/// Ways of getting credentials a profile may name that modeltool does not
/// follow (each needs a process, a web request or a token of its own).
const UNSUPPORTED: [&str; 5] = [
    "credential_process",
    "role_arn",
    "sso_session",
    "sso_start_url",
    "web_identity_token_file",
];

/// What a line that the INI format does not allow is told.
const NOT_INI: &str = "neither `[section]`, `key = value` nor a comment (the AWS CLI would not read this file either)";

/// One of the two shared files, parsed.
struct File {
    path: PathBuf,
    text: String,
    ini: Ini,
}

impl File {
    /// Reads and parses `path`; `None` when there is no such file.
    fn read(path: PathBuf) -> Result<Option<File>> {
        let err = |path: &Path, reason: String| LoadError::Remote {
            path: path.to_owned(),
            reason,
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(err(
                    &path,
                    format!(
                        "cannot read this AWS settings file: {}",
                        Escaped(&e.to_string())
                    ),
                ));
            }
        };
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let valid = e.utf8_error().valid_up_to();
                let line = 1 + e.as_bytes()[..valid]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                return Err(err(&path, format!("line {line}: not UTF-8 text")));
            }
        };
        // As the AWS CLI reads them: no quotes or escapes in values, and the
        // indented keys of a nested block (`s3 =` then `  endpoint_url = ...`)
        // kept apart from the profile's own keys by their indent.
        let options = ParseOption {
            enabled_quote: false,
            enabled_escape: false,
            enabled_indented_mutiline_value: false,
            enabled_preserve_key_leading_whitespace: true,
        };
        // A comment line may be indented (Python's configparser, which the
        // CLI uses, strips lines before looking for `#` and `;`; rust-ini
        // would take an indented one for a key): blanked, lines kept.
        let uncommented: Vec<&str> = text
            .lines()
            .map(|l| {
                if l.trim_start().starts_with(['#', ';']) {
                    ""
                } else {
                    l
                }
            })
            .collect();
        let ini = Ini::load_from_str_opt(&uncommented.join("\n"), options).map_err(|e| {
            if e.msg.contains("EOF") {
                // A last line without `=` (or a `[` never closed): the
                // parser ran to the end looking for the rest.
                let last = uncommented.iter().rposition(|l| !l.trim().is_empty());
                return err(
                    &path,
                    format!("line {}: {NOT_INI}", last.map_or(1, |i| i + 1)),
                );
            }
            err(
                &path,
                format!("line {}: {}", e.line, Escaped(e.msg.as_ref())),
            )
        })?;
        let file = File { path, text, ini };
        // A line that is neither a section, a comment nor `key = value`
        // runs into the next key's name: said here, with its line.
        for (_, props) in file.ini.iter() {
            for (key, _) in props.iter() {
                if let Some((first, _)) = key.split_once('\n') {
                    let first = first.trim();
                    let line = file.line_where(|l| l == first).unwrap_or(1);
                    // Not quoted: in a credentials file, it may be a secret.
                    return Err(err(&file.path, format!("line {line}: {NOT_INI}")));
                }
            }
        }
        Ok(Some(file))
    }

    /// The number of the first line whose trimmed text passes `f`.
    fn line_where(&self, f: impl Fn(&str) -> bool) -> Option<usize> {
        self.text.lines().position(|l| f(l.trim())).map(|i| i + 1)
    }

    /// `path`, with the line of `[section]` when found.
    fn at(&self, section: &str) -> String {
        let header = |l: &str| {
            l.strip_prefix('[')
                .and_then(|l| l.strip_suffix(']'))
                .is_some_and(|s| s.trim() == section)
        };
        match self.line_where(header) {
            Some(n) => format!("line {n}"),
            None => "the file".to_owned(),
        }
    }

    fn has(&self, section: &str) -> bool {
        self.ini.section(Some(section)).is_some()
    }

    /// The value of `key` in `section` (the last one, if the file repeats
    /// the section or the key), trimmed; `None` when absent or empty.
    fn get(&self, section: &str, key: &str) -> Option<String> {
        self.ini
            .section_all(Some(section))
            .rev()
            .find_map(|p| p.get_all(key).next_back())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value of `key` in the block nested under `parent` in `section`:
    /// `parent =` on a line of its own, then indented `key = value` lines.
    fn get_nested(&self, section: &str, parent: &str, key: &str) -> Option<String> {
        let mut found = None;
        for props in self.ini.section_all(Some(section)) {
            let mut current = "";
            for (k, v) in props.iter() {
                if !k.starts_with([' ', '\t']) {
                    current = k;
                } else if current == parent && k.trim() == key {
                    found = Some(v.trim().to_owned());
                }
            }
        }
        found.filter(|v| !v.is_empty())
    }
}

/// `var`'s path, `~/` expanded, else `~/{default}`.
fn file_path(env: &dyn Fn(&str) -> Option<String>, var: &str, default: &str) -> Option<PathBuf> {
    let home = || env("HOME").map(PathBuf::from);
    match env(var) {
        Some(p) => match p.strip_prefix("~/") {
            Some(rest) => home().map(|h| h.join(rest)),
            None => Some(PathBuf::from(p)),
        },
        None => home().map(|h| h.join(default)),
    }
}

fn is_true(v: Option<String>) -> bool {
    v.is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The settings for `shown` (an `s3://` address, named by errors that are
/// about no file): `env` gives an environment variable, trimmed, `None`
/// when unset or empty.
pub(crate) fn resolve(shown: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
    let addr_err = |reason: String| LoadError::Remote {
        path: shown.to_owned(),
        reason,
    };
    let explicit = env("AWS_PROFILE");
    let name = explicit.clone().unwrap_or_else(|| "default".to_owned());
    let read = |var: &str, default: &str| match file_path(env, var, default) {
        Some(p) => File::read(p),
        None => Ok(None),
    };
    let credentials = read("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials")?;
    let config = read("AWS_CONFIG_FILE", ".aws/config")?;
    // `[NAME]` in the credentials file; `[profile NAME]` in the config
    // file, where the default profile is `[default]` (or `[profile default]`).
    let cred_section = credentials
        .as_ref()
        .filter(|f| f.has(&name))
        .map(|f| (f, name.clone()));
    let config_section = config.as_ref().and_then(|f| {
        let mut names = vec![format!("profile {name}")];
        if name == "default" {
            names.insert(0, "default".to_owned());
        }
        names.into_iter().find(|s| f.has(s)).map(|s| (f, s))
    });
    if explicit.is_some() && cred_section.is_none() && config_section.is_none() {
        let shown_file = |f: &Option<File>, var: &str, default: &str| match f {
            Some(f) => Escaped(&f.path.display().to_string()).to_string(),
            None => match file_path(env, var, default) {
                Some(p) => format!("{} (no such file)", Escaped(&p.display().to_string())),
                None => format!("{var} (not set, and no HOME)"),
            },
        };
        return Err(addr_err(format!(
            "AWS_PROFILE names the profile `{}`, which neither {} nor {} holds",
            Escaped(&name),
            shown_file(
                &credentials,
                "AWS_SHARED_CREDENTIALS_FILE",
                ".aws/credentials"
            ),
            shown_file(&config, "AWS_CONFIG_FILE", ".aws/config"),
        )));
    }

    // Credentials: the environment's pair, else the credentials file's
    // profile, else the config file's.
    let (keys, token, check) = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(a), Some(s)) => (
            Some((a, s)),
            env("AWS_SESSION_TOKEN"),
            "check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (for temporary \
             credentials) and AWS_REGION, and that they may read this bucket"
                .to_owned(),
        ),
        (Some(_), None) | (None, Some(_)) => {
            let (set, unset) = if env("AWS_ACCESS_KEY_ID").is_some() {
                ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
            } else {
                ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
            };
            return Err(addr_err(format!(
                "{set} is set but {unset} is not: give both, or neither"
            )));
        }
        (None, None) => {
            let mut found = None;
            for (file, section) in [&cred_section, &config_section].into_iter().flatten() {
                let id = file.get(section, "aws_access_key_id");
                let secret = file.get(section, "aws_secret_access_key");
                let path = Escaped(&file.path.display().to_string()).to_string();
                match (id, secret) {
                    (Some(a), Some(s)) => {
                        found = Some((
                            Some((a, s)),
                            file.get(section, "aws_session_token"),
                            format!(
                                "check aws_access_key_id, aws_secret_access_key and \
                                 aws_session_token of profile `{}` in {path}, the region, and \
                                 that they may read this bucket",
                                Escaped(&name)
                            ),
                        ));
                        break;
                    }
                    (Some(_), None) | (None, Some(_)) => {
                        return Err(LoadError::Remote {
                            path: file.path.clone(),
                            reason: format!(
                                "{}: profile `{}` needs both aws_access_key_id and \
                                 aws_secret_access_key, and has one",
                                file.at(section),
                                Escaped(&name)
                            ),
                        });
                    }
                    (None, None) => {}
                }
            }
            match found {
                Some(f) => f,
                None => {
                    if let Some((file, section)) = &config_section {
                        if let Some(how) =
                            UNSUPPORTED.iter().find(|k| file.get(section, k).is_some())
                        {
                            return Err(LoadError::Remote {
                                path: file.path.clone(),
                                reason: format!(
                                    "{}: profile `{}` gets its credentials through `{how}`, \
                                     which modeltool does not follow: give keys in \
                                     AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and \
                                     AWS_SESSION_TOKEN (`aws configure export-credentials \
                                     --profile {} --format env` prints them)",
                                    file.at(section),
                                    Escaped(&name),
                                    Escaped(&name)
                                ),
                            });
                        }
                    }
                    (
                        None,
                        None,
                        format!(
                            "the request was unsigned: no AWS_ACCESS_KEY_ID and \
                             AWS_SECRET_ACCESS_KEY, and no keys in profile `{}` of the shared \
                             credentials or config file (a bucket that is not public needs \
                             them)",
                            Escaped(&name)
                        ),
                    )
                }
            }
        }
    };

    // The region: AWS_REGION, AWS_DEFAULT_REGION, the profile's `region`.
    let region = match env("AWS_REGION") {
        Some(r) => (r, "AWS_REGION".to_owned()),
        None => match env("AWS_DEFAULT_REGION") {
            Some(r) => (r, "AWS_DEFAULT_REGION".to_owned()),
            None => match config_section
                .as_ref()
                .and_then(|(f, s)| Some((f.get(s, "region")?, f, s)))
            {
                Some((r, f, s)) => (
                    r,
                    format!(
                        "`region` of profile `{}` in {} ({})",
                        Escaped(&name),
                        Escaped(&f.path.display().to_string()),
                        f.at(s)
                    ),
                ),
                None => (DEFAULT_REGION.to_owned(), String::new()),
            },
        },
    };
    let (region, region_from) = region;
    if !is_region(&region) {
        return Err(addr_err(format!(
            "{region_from} is `{}`, not a region name such as `eu-west-1`",
            Escaped(&region)
        )));
    }

    // The endpoint: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the `s3` block
    // of the profile's `services` section, the profile's `endpoint_url`;
    // none when AWS_IGNORE_CONFIGURED_ENDPOINT_URLS (or the profile's
    // `ignore_configured_endpoint_urls`) is true.
    let ignore = is_true(env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"))
        || is_true(
            config_section
                .as_ref()
                .and_then(|(f, s)| f.get(s, "ignore_configured_endpoint_urls")),
        );
    let from_file = |f: &File, s: &str, what: &str| {
        format!(
            "{what} of profile `{}` in {} ({})",
            Escaped(&name),
            Escaped(&f.path.display().to_string()),
            f.at(s)
        )
    };
    let endpoint = if ignore {
        None
    } else if let Some(e) = env("AWS_ENDPOINT_URL_S3") {
        Some((e, "AWS_ENDPOINT_URL_S3".to_owned()))
    } else if let Some(e) = env("AWS_ENDPOINT_URL") {
        Some((e, "AWS_ENDPOINT_URL".to_owned()))
    } else if let Some((f, s)) = &config_section {
        let services = f.get(s, "services");
        let nested = services.and_then(|svc| {
            let section = format!("services {svc}");
            let e = f.get_nested(&section, "s3", "endpoint_url")?;
            Some((
                e,
                from_file(f, &section, "the s3 endpoint_url of the services section"),
            ))
        });
        nested.or_else(|| Some((f.get(s, "endpoint_url")?, from_file(f, s, "endpoint_url"))))
    } else {
        None
    };
    if let Some((e, from)) = &endpoint {
        let lower = e.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(addr_err(format!(
                "{from} is `{}`, not an http:// or https:// URL",
                Escaped(e)
            )));
        }
    }
    Ok(Config {
        keys,
        token,
        region,
        endpoint: endpoint.map(|(e, _)| e.trim_end_matches('/').to_owned()),
        check,
    })
}

/// Whether `r` is a plain region name (it goes into host names and
/// signatures).
pub(crate) fn is_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 64
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> std::result::Result<File, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("config");
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        match File::read(path) {
            Ok(Some(f)) => Ok(f),
            Ok(None) => Err("no file".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn files_read_as_the_aws_cli_reads_them() {
        let f = parse(
            "# a comment\r\n[profile a]\r\nregion = eu-west-1  \r\n; another\r\n\
             s3 =\r\n  endpoint_url = http://nested\r\n  # indented comment\r\n\
             endpoint_url = http://own\r\n[services x]\r\ns3 =\r\n  endpoint_url = http://svc\r\n",
        )
        .expect("parses");
        assert_eq!(f.get("profile a", "region").as_deref(), Some("eu-west-1"));
        assert_eq!(
            f.get("profile a", "endpoint_url").as_deref(),
            Some("http://own"),
            "the nested key is not the profile's own"
        );
        assert_eq!(
            f.get_nested("services x", "s3", "endpoint_url").as_deref(),
            Some("http://svc")
        );
        assert_eq!(f.at("services x"), "line 9");
    }

    #[test]
    fn malformed_files_name_the_line() {
        for text in [
            "[default]\nregion = us-east-1\nnot a setting\nx = 1\n",
            "[default]\nregion = us-east-1\nnot a setting\n\n",
            "[default]\nregion = us-east-1\n[profile x\n",
        ] {
            let e = parse(text).err();
            assert!(
                e.as_deref()
                    .is_some_and(|e| e.contains("line 3: neither `[section]`")),
                "{text:?}: {e:?}"
            );
        }
        let e = parse("[default]\n\nregion = \u{e9}\n").err();
        assert_eq!(e, None, "UTF-8 is fine");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config");
        std::fs::write(&path, b"[default]\nregion = \xff\n").expect("written");
        let e = File::read(path).err().map(|e| e.to_string());
        assert!(e.as_deref().is_some_and(|e| e.contains("line 2")), "{e:?}");
    }
}
