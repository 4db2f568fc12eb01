//! Remote models: `https://` and `http://` URLs of a file or of a
//! `model.safetensors.index.json`, and `hf://ORG/REPO[@REVISION][/PATH]`
//! addresses of the Hugging Face Hub, and `s3://BUCKET/KEY` objects (or
//! prefixes holding a checkpoint) of S3 and S3-compatible stores, read with HTTP range requests and
//! never downloaded whole unless a command needs every byte. The design,
//! the crate chosen and the environment variables are in `docs/REMOTE.md`.
//!
//! A remote file is a byte source of [`ModelFile`] like a local one: its
//! first answer (its first 100,000 bytes) gives its length, its
//! ETag and usually its whole header; every later range request carries
//! that ETag, so a file changed on the server between two requests is
//! [`LoadError::Changed`], never a mix of two versions.

mod aws;
mod http;
mod s3;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use modeltool_format::text::Escaped;
use modeltool_format::{DETECT_LEN, FileKind, JsonModel, detect};
use rayon::prelude::*;

pub(crate) use http::RemoteFile;
use http::{Client, Names, Settings, encode, join, origin};

use crate::shards::{self, INDEX_NAME};
use crate::{LoadError, Model, ModelFile, OpenOptions, Result};

/// The largest index file read (one of 23.5 MB exists; an index is held in
/// memory whole).
const MAX_INDEX_LEN: u64 = 256 << 20;

/// The Hub's address when `HF_ENDPOINT` is not set.
const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// The single-file name tried when a repo has no index.
const SINGLE_NAME: &str = "model.safetensors";

/// A remote address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Address {
    /// An `http://` or `https://` URL.
    Url(String),
    /// `hf://ORG/REPO[@REVISION][/PATH]`.
    Hf {
        /// `ORG/REPO`.
        repo: String,
        /// The branch, tag or commit, when given (else `main`).
        revision: Option<String>,
        /// The file inside the repo, when given.
        path: Option<String>,
    },
    /// `s3://BUCKET/KEY`: an object, or a prefix holding a checkpoint.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key or prefix (may be empty: the whole bucket).
        key: String,
    },
}

impl Address {
    /// `None` when `s` is not a remote address at all (a local path); the
    /// reason when it looks like one but is malformed.
    pub(crate) fn parse(s: &str) -> Option<std::result::Result<Address, String>> {
        let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            let host = s.split_once("://").map_or("", |(_, r)| r);
            if host.is_empty() || host.starts_with('/') {
                return Some(Err("a URL needs a host".into()));
            }
            return Some(Ok(Address::Url(s.to_owned())));
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            let plain_bucket = !bucket.is_empty()
                && bucket
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
            if !plain_bucket {
                return Some(Err(
                    "an s3:// address is s3://BUCKET/KEY, with a bucket name of letters, \
                     digits, `-`, `.` and `_`"
                        .into(),
                ));
            }
            if key.split('/').any(|p| p == "." || p == "..") {
                return Some(Err("an S3 key may not hold `.` or `..` parts".into()));
            }
            return Some(Ok(Address::S3 {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            }));
        }
        let rest = s.strip_prefix("hf://")?;
        let mut parts = rest.splitn(3, '/');
        let org = parts.next().unwrap_or_default();
        let repo_rev = parts.next().unwrap_or_default();
        let path = parts.next().filter(|p| !p.is_empty());
        let (repo, revision) = match repo_rev.split_once('@') {
            Some((r, rev)) => (r, Some(rev)),
            None => (repo_rev, None),
        };
        let plain =
            |x: &str| !x.is_empty() && x != "." && x != ".." && !x.contains(['\\', '?', '#']);
        if !plain(org) || !plain(repo) {
            return Some(Err(
                "an hf:// address is hf://ORG/REPO[@REVISION][/PATH]".into()
            ));
        }
        if revision.is_some_and(|r| !plain(r)) {
            return Some(Err("the revision after `@` is empty or not a name".into()));
        }
        if let Some(p) = path {
            if !p.split('/').all(plain) {
                return Some(Err(format!(
                    "`{}` is not a path of plain names inside the repo",
                    Escaped(p)
                )));
            }
        }
        Some(Ok(Address::Hf {
            repo: format!("{org}/{repo}"),
            revision: revision.map(str::to_owned),
            path: path.map(str::to_owned),
        }))
    }
}

/// `HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else
/// `~/.cache/huggingface`.
fn hf_home() -> Option<PathBuf> {
    let var = |n: &str| std::env::var_os(n).filter(|v| !v.is_empty());
    if let Some(h) = var("HF_HOME") {
        return Some(h.into());
    }
    if let Some(x) = var("XDG_CACHE_HOME") {
        return Some(Path::new(&x).join("huggingface"));
    }
    var("HOME").map(|h| Path::new(&h).join(".cache/huggingface"))
}

/// The Hub's address: `HF_ENDPOINT` without a trailing `/`, else the Hub.
fn hf_endpoint() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .map(|e| e.trim().trim_end_matches('/').to_owned())
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned())
}

/// The token: `HF_TOKEN`, else the token file in `HF_HOME`.
fn hf_token() -> Option<String> {
    if let Ok(t) = std::env::var("HF_TOKEN") {
        let t = t.trim();
        if !t.is_empty() {
            return Some(t.to_owned());
        }
    }
    let text = std::fs::read_to_string(hf_home()?.join("token")).ok()?;
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// The client for a model: the token goes to the Hub endpoint's origin only.
fn client() -> Arc<Client> {
    let token = hf_token().and_then(|t| Some((origin(&hf_endpoint())?, t)));
    Arc::new(Client::new(Settings::from_env(), token))
}

/// The folder of `repo` in the local Hugging Face cache
/// (`HF_HUB_CACHE`, else `$HF_HOME/hub`).
fn cache_repo_folder(repo: &str) -> Option<PathBuf> {
    let hub = match std::env::var_os("HF_HUB_CACHE").filter(|v| !v.is_empty()) {
        Some(h) => PathBuf::from(h),
        None => hf_home()?.join("hub"),
    };
    Some(hub.join(format!("models--{}", repo.replace('/', "--"))))
}

/// The cached copy of `path` of `repo` at `revision`, if the cache holds it:
/// `snapshots/COMMIT/PATH`, the commit read from `refs/REVISION` (or the
/// revision itself when it is a commit hash).
fn cached(repo: &str, revision: &str, path: &str) -> Option<PathBuf> {
    let folder = cache_repo_folder(repo)?;
    let is_commit = revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit());
    let commit = if is_commit {
        revision.to_owned()
    } else {
        std::fs::read_to_string(folder.join("refs").join(revision))
            .ok()?
            .trim()
            .to_owned()
    };
    if commit.is_empty() || commit.contains(['/', '\\']) || commit == ".." {
        return None;
    }
    let file = folder.join("snapshots").join(commit).join(path);
    file.is_file().then_some(file)
}

/// Opens a remote model: `given` is the address as the user wrote it.
pub(crate) fn open(given: &Path, address: Address, options: OpenOptions) -> Result<Model> {
    match address {
        Address::Url(url) => {
            let names = Names {
                shown: PathBuf::from(&url),
                hf: None,
                s3: None,
            };
            open_url(&client(), &url, names, &options)
        }
        Address::Hf {
            repo,
            revision,
            path,
        } => open_hf(given, &repo, revision.as_deref(), path.as_deref(), &options),
        Address::S3 { bucket, key } => open_s3(&bucket, &key, &options),
    }
}

/// How large a `ListObjectsV2` page may be.
const MAX_LIST_PAGE: u64 = 16 << 20;

/// An S3 object, else the checkpoint under the prefix: the prefix's
/// `model.safetensors.index.json`, else its `model.safetensors`, else its
/// one model file.
fn open_s3(bucket: &str, key: &str, options: &OpenOptions) -> Result<Model> {
    let config = s3::Config::load(Path::new(&format!("s3://{bucket}/{key}")))?;
    let client = Arc::new(Client::new(Settings::from_env(), None).with_s3(config.clone()));
    let names = |key: &str| Names {
        shown: PathBuf::from(format!("s3://{bucket}/{key}")),
        hf: None,
        s3: Some((bucket.to_owned(), key.to_owned())),
    };
    if !key.is_empty() && !key.ends_with('/') {
        let url = config.object_url(bucket, key);
        if let Some(file) = RemoteFile::open_if_found(&client, &url, names(key))? {
            return open_remote_file(&client, file, names(key), options);
        }
    }
    let prefix = if key.is_empty() || key.ends_with('/') {
        key.to_owned()
    } else {
        format!("{key}/")
    };
    let list_names = names(&prefix);
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    let mut capped = false;
    loop {
        let url = config.list_url(bucket, &prefix, token.as_deref());
        let body = client.fetch_small(&list_names, &url, MAX_LIST_PAGE)?;
        let (page, next) = s3::parse_list(&String::from_utf8_lossy(&body));
        keys.extend(page);
        match next {
            Some(t) if keys.len() < s3::MAX_KEYS => token = Some(t),
            Some(_) => {
                capped = true;
                break;
            }
            None => break,
        }
    }
    if keys.is_empty() && !key.is_empty() && !key.ends_with('/') {
        // Neither an object nor a prefix: S3's own 404 for the key.
        return Err(LoadError::Remote {
            path: PathBuf::from(format!("s3://{bucket}/{key}")),
            reason: s3::status_message(404, Some("NoSuchKey"), bucket, key, &config.check),
        });
    }
    let names_under: Vec<&str> = keys
        .iter()
        .filter_map(|k| k.strip_prefix(prefix.as_str()))
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .collect();
    let chosen = [INDEX_NAME, SINGLE_NAME]
        .into_iter()
        .find(|c| names_under.contains(c))
        .map(str::to_owned);
    let chosen = match chosen {
        Some(c) => c,
        None => {
            let models: Vec<&str> = names_under
                .iter()
                .copied()
                .filter(|n| {
                    let n = n.to_ascii_lowercase();
                    [
                        ".safetensors",
                        ".gguf",
                        ".index.json",
                        ".pt",
                        ".pth",
                        ".ckpt",
                    ]
                    .iter()
                    .any(|ext| n.ends_with(ext))
                })
                .collect();
            match models[..] {
                [one] => one.to_owned(),
                _ => {
                    let shown = format!("s3://{bucket}/{prefix}");
                    let what = if models.is_empty() {
                        format!("holds no {INDEX_NAME}, no {SINGLE_NAME} and no other model file")
                    } else {
                        format!(
                            "holds {} model files and no {INDEX_NAME} or {SINGLE_NAME}: name \
                             one (e.g. `{}`)",
                            models.len(),
                            Escaped(models[0])
                        )
                    };
                    let capped = if capped {
                        format!(" (among the first {} keys listed)", keys.len())
                    } else {
                        String::new()
                    };
                    let missing_key = if key.is_empty() || key.ends_with('/') {
                        String::new()
                    } else {
                        format!("no key `{}`, and the prefix ", Escaped(key))
                    };
                    return Err(LoadError::Remote {
                        path: PathBuf::from(shown),
                        reason: format!("not found: {missing_key}{what}{capped}"),
                    });
                }
            }
        }
    };
    let full = format!("{prefix}{chosen}");
    let url = config.object_url(bucket, &full);
    let file = RemoteFile::open(&client, &url, names(&full))?;
    open_remote_file(&client, file, names(&full), options)
}

fn open_hf(
    given: &Path,
    repo: &str,
    revision: Option<&str>,
    path: Option<&str>,
    options: &OpenOptions,
) -> Result<Model> {
    let rev = revision.unwrap_or("main");
    let candidates: Vec<&str> = match path {
        Some(p) => vec![p],
        None => vec![INDEX_NAME, SINGLE_NAME],
    };
    let listed: Vec<String> = candidates
        .iter()
        .map(|c| format!("`{}`", Escaped(c)))
        .collect();
    for c in &candidates {
        if let Some(local) = cached(repo, rev, c) {
            return open_cached(repo, &local, options);
        }
    }
    if env_flag("HF_HUB_OFFLINE") {
        return Err(LoadError::Remote {
            path: given.to_owned(),
            reason: format!(
                "HF_HUB_OFFLINE is set and the local Hugging Face cache holds no {} of `{}` \
                 at revision `{}`",
                listed.join(" or "),
                Escaped(repo),
                Escaped(rev)
            ),
        });
    }
    let client = client();
    let endpoint = hf_endpoint();
    let shown_prefix = match revision {
        Some(r) => format!("hf://{repo}@{r}"),
        None => format!("hf://{repo}"),
    };
    for c in &candidates {
        let url = format!(
            "{endpoint}/{}/resolve/{}/{}",
            encode(repo, true),
            encode(rev, false),
            encode(c, true)
        );
        let names = Names {
            shown: PathBuf::from(format!("{shown_prefix}/{c}")),
            hf: Some((repo.to_owned(), rev.to_owned(), (*c).to_owned())),
            s3: None,
        };
        match RemoteFile::open_if_found(&client, &url, names.clone())? {
            Some(file) => return open_remote_file(&client, file, names, options),
            None => continue,
        }
    }
    Err(LoadError::Remote {
        path: given.to_owned(),
        reason: format!(
            "not found: repo `{}` at revision `{}` holds no {} (HTTP 404)",
            Escaped(repo),
            Escaped(rev),
            listed.join(" and no ")
        ),
    })
}

/// A file the local cache holds: opened as a local file. Shards of a
/// cached index are symbolic links into the repo's `blobs/`, so the
/// boundary they must stay inside is the repo's cache folder.
fn open_cached(repo: &str, local: &Path, options: &OpenOptions) -> Result<Model> {
    let is_index = local
        .file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(".index.json"));
    match cache_repo_folder(repo) {
        Some(folder) if is_index => {
            let (handle, _) = crate::file::open_regular(local)?;
            shards::open_index_within(local, &handle, options.clone(), Some(&folder))
        }
        _ => Model::open(local, options.clone()),
    }
}

fn open_url(client: &Arc<Client>, url: &str, names: Names, options: &OpenOptions) -> Result<Model> {
    let file = RemoteFile::open(client, url, names.clone())?;
    open_remote_file(client, file, names, options)
}

/// Whether the URL's path ends with `suffix` (its query ignored).
fn named_as(url: &str, suffix: &str) -> bool {
    url.split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase()
        .ends_with(suffix)
}

/// Opens a remote file by what its first bytes say, as `Model::open` does
/// a local one.
fn open_remote_file(
    client: &Arc<Client>,
    file: RemoteFile,
    names: Names,
    options: &OpenOptions,
) -> Result<Model> {
    let path = names.shown.clone();
    let head = file.head();
    let head = &head[..head.len().min(DETECT_LEN)];
    let kind = detect(head);
    let url = file.url().to_owned();
    let index_named = named_as(&url, ".index.json");
    match kind {
        FileKind::Gguf {
            byte_swapped: false,
        } => crate::gguf::open(&path, ModelFile::remote(file)),
        FileKind::Safetensors => Model::open_safetensors(&path, ModelFile::remote(file)),
        FileKind::ShardIndex => open_index(client, file, names, options),
        FileKind::Json if index_named => open_index(client, file, names, options),
        FileKind::JsonModel | FileKind::Json
            if named_as(&url, ".json") || kind == FileKind::JsonModel =>
        {
            let bytes = whole(&file, MAX_INDEX_LEN.max(4 << 30), "a JSON model file")?;
            let json = JsonModel::read(&bytes[..]).map_err(LoadError::format(&path))?;
            Model::from_json(&path, json, ModelFile::remote(file))
        }
        FileKind::Zip | FileKind::PytorchLegacy | FileKind::Tar => {
            let container =
                modeltool_format::pytorch::sniff(head).map_err(|source| LoadError::Pytorch {
                    path: path.clone(),
                    source,
                })?;
            crate::pytorch::open(&path, ModelFile::remote(file), container, options)
        }
        FileKind::Binary if named_as(&url, ".safetensors") || head.len() < 9 => {
            Model::open_safetensors(&path, ModelFile::remote(file))
        }
        kind => Err(LoadError::NotWeights { path, kind }),
    }
}

/// The whole of a remote file, refused past `cap` bytes.
fn whole(file: &RemoteFile, cap: u64, what: &str) -> Result<Vec<u8>> {
    if file.len > cap {
        return Err(LoadError::Remote {
            path: file.shown.clone(),
            reason: format!(
                "{what} of {} bytes, more than the {cap} modeltool reads whole",
                file.len
            ),
        });
    }
    let mut bytes = vec![0u8; file.len as usize];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(bytes)
}

/// A remote index: read whole (once), then the header of every shard,
/// resolved relative to the index's URL, fetched a bounded number at a
/// time.
fn open_index(
    client: &Arc<Client>,
    file: RemoteFile,
    names: Names,
    options: &OpenOptions,
) -> Result<Model> {
    let index_path = names.shown.clone();
    let text = whole(&file, MAX_INDEX_LEN, "an index")?;
    let (index, shard_names) = shards::parse_index(&index_path, &text)?;
    drop(text);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(client.settings.concurrency.min(shard_names.len()).max(1))
        .build()
        .map_err(|e| LoadError::Remote {
            path: index_path.clone(),
            reason: format!("cannot start the threads that fetch the shards: {e}"),
        })?;
    let headers: Vec<shards::Shard> = pool.install(|| {
        shard_names
            .par_iter()
            .map(|name| {
                let url = join(file.url(), &encode(name, true));
                let shard_names = Names {
                    shown: sibling(&names.shown, name),
                    hf: names
                        .hf
                        .as_ref()
                        .map(|(repo, rev, p)| (repo.clone(), rev.clone(), sibling_str(p, name))),
                    s3: names
                        .s3
                        .as_ref()
                        .map(|(bucket, key)| (bucket.clone(), sibling_str(key, name))),
                };
                let shard = RemoteFile::open(client, &url, shard_names)?;
                let head = shard.head();
                let head = head[..head.len().min(4096)].to_vec();
                shards::read_shard(&index_path, name, ModelFile::remote(shard), &head, options)
            })
            .collect::<Result<_>>()
    })?;
    shards::assemble(&index_path, &index, &shard_names, headers)
}

/// `name` in the folder of `path` (a string path with `/`).
fn sibling_str(path: &str, name: &str) -> String {
    match path.rfind('/') {
        Some(i) => format!("{}/{name}", &path[..i]),
        None => name.to_owned(),
    }
}

fn sibling(path: &Path, name: &str) -> PathBuf {
    PathBuf::from(sibling_str(&path.to_string_lossy(), name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_addresses_parse_into_repo_revision_and_path() {
        let hf = |s: &str| Address::parse(s).expect("remote").expect("valid");
        assert_eq!(
            hf("hf://org/repo"),
            Address::Hf {
                repo: "org/repo".into(),
                revision: None,
                path: None
            }
        );
        assert_eq!(
            hf("hf://org/repo@v1.0/sub/model.safetensors"),
            Address::Hf {
                repo: "org/repo".into(),
                revision: Some("v1.0".into()),
                path: Some("sub/model.safetensors".into())
            }
        );
        assert!(Address::parse("hf://org").expect("remote").is_err());
        assert!(
            Address::parse("hf://org/repo/../x")
                .expect("remote")
                .is_err()
        );
        assert!(Address::parse("hf://org/repo@/x").expect("remote").is_err());
        assert!(Address::parse("model.safetensors").is_none());
        assert!(Address::parse("./https:/x").is_none());
        assert_eq!(
            hf("HTTPS://h/x"),
            Address::Url("HTTPS://h/x".into()),
            "schemes are case-insensitive"
        );
    }

    #[test]
    fn relative_names_resolve_against_the_index_url() {
        assert_eq!(
            join("http://h:1/a/b/index.json?x=1", "s-1.safetensors"),
            "http://h:1/a/b/s-1.safetensors"
        );
        assert_eq!(join("http://h/a/b", "/c"), "http://h/c");
        assert_eq!(join("https://h/a", "//cdn/x"), "https://cdn/x");
        assert_eq!(join("http://h/a", "http://o/y"), "http://o/y");
        assert_eq!(join("http://h", "x"), "http://h/x");
        assert_eq!(encode("a b/c%", true), "a%20b/c%25");
        assert_eq!(encode("refs/pr/1", false), "refs%2Fpr%2F1");
    }

    #[test]
    fn origins_compare_host_and_port() {
        assert_eq!(
            origin("HTTP://Example.com:80/x").as_deref(),
            Some("http://example.com")
        );
        assert_ne!(
            origin("http://127.0.0.1:5/x"),
            origin("http://localhost:5/x")
        );
        assert_ne!(origin("http://h:5/"), origin("http://h:6/"));
    }
}
