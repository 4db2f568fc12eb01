//! The HTTP client: range requests with redirects followed by hand (the
//! `Range` and `If-Match` headers kept, the token dropped when the host
//! changes), bounded retries with backoff, a timeout on every read, and the
//! ETag of the first answer checked on every later one.

use std::collections::VecDeque;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use modeltool_format::text::Escaped;
use ureq::http::{Response, StatusCode};

use crate::{LoadError, Result};

/// How many bytes the first request for a file asks for: enough for the
/// 8-byte length and the whole header of most safetensors files.
pub const FIRST_READ: u64 = 100_000;

/// How many redirects one request follows.
const MAX_REDIRECTS: usize = 10;

/// How many answers running to the end of a file are kept open for the
/// reads that continue them (one per thread reading the file in order).
const MAX_STREAMS: usize = 4;

/// How many ends of recent reads are remembered to tell sequential reads.
const MAX_ENDS: usize = 16;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An answer running to the end of the file, read up to `pos`.
struct Stream {
    pos: u64,
    reader: ureq::BodyReader<'static>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("pos", &self.pos).finish()
    }
}

/// The settings of the client, from the environment (see `docs/REMOTE.md`).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Connecting, and each read of an answer, may take this long.
    pub timeout: Duration,
    /// How many times a transient failure is retried.
    pub retries: u32,
    /// The first wait before a retry; it doubles on each.
    pub backoff: Duration,
    /// How many files are fetched at once.
    pub concurrency: usize,
}

impl Settings {
    pub(crate) fn from_env() -> Settings {
        let num = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        Settings {
            timeout: Duration::from_secs_f64(num("MODELTOOL_HTTP_TIMEOUT").unwrap_or(30.0)),
            retries: num("MODELTOOL_HTTP_RETRIES").map_or(4, |v| v.min(20.0) as u32),
            backoff: Duration::from_secs_f64(
                num("MODELTOOL_HTTP_BACKOFF").unwrap_or(0.5).min(60.0),
            ),
            concurrency: num("MODELTOOL_HTTP_CONCURRENCY")
                .map_or(16, |v| v.clamp(1.0, 256.0) as usize),
        }
    }
}

/// One client for a whole model: a pool of kept-alive connections, the
/// settings, and the token with the one origin it may be sent to.
#[derive(Debug)]
pub(crate) struct Client {
    agent: ureq::Agent,
    pub(crate) settings: Settings,
    /// `(origin, token)`: sent as `Authorization: Bearer` to that origin
    /// (`scheme://host:port`) only.
    token: Option<(String, String)>,
    /// For `s3://` addresses: the AWS settings that sign requests.
    s3: Option<super::s3::Config>,
    /// The region of the bucket, when S3 said it is not the configured one
    /// (every later request is signed for it, and on AWS sent to it).
    bucket_region: Mutex<Option<String>>,
}

/// Why one attempt failed.
enum Failure {
    /// Worth another try (a reset, a timeout, 429, 5xx).
    Transient(String),
    /// Not worth another try.
    Fatal(LoadError),
}

impl From<LoadError> for Failure {
    fn from(e: LoadError) -> Failure {
        Failure::Fatal(e)
    }
}

/// What names a file in messages about its answers.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    /// The address shown (an `hf://` address or the URL).
    pub shown: PathBuf,
    /// For a file of a Hugging Face repo: `(repo, revision, path)`.
    pub hf: Option<(String, String, String)>,
    /// For an object of an S3 bucket: `(bucket, key)`.
    pub s3: Option<(String, String)>,
}

impl Names {
    fn err(&self, reason: String) -> LoadError {
        LoadError::Remote {
            path: self.shown.clone(),
            reason,
        }
    }

    /// The error for an S3 answer with status `code` and `body`, which
    /// names the problem: `<Code>NoSuchKey</Code>`.
    fn s3_error(&self, code: u16, body: &[u8], check: &str) -> LoadError {
        let (bucket, key) = self.s3.as_ref().map_or(("", ""), |(b, k)| (b, k));
        let s3_code = super::s3::element(&String::from_utf8_lossy(body), "Code");
        self.err(super::s3::status_message(
            code,
            s3_code.as_deref(),
            bucket,
            key,
            check,
        ))
    }

    /// The error for an answer that is neither success nor transient.
    /// `check` is what to check when an S3 bucket refuses access.
    pub(crate) fn status_error(
        &self,
        resp: Response<ureq::Body>,
        url: &str,
        check: &str,
    ) -> LoadError {
        let status = resp.status();
        let code = status.as_u16();
        if self.s3.is_some() {
            return self.s3_error(code, &error_body(resp), check);
        }
        match (code, &self.hf) {
            (401 | 403, Some((repo, ..))) => self.err(format!(
                "HTTP {code}: the repo `{}` is gated or private: give a token with HF_TOKEN \
                 (or in $HF_HOME/token) of an account that has access",
                Escaped(repo)
            )),
            (401 | 403, None) => self.err(format!(
                "HTTP {code}: the server refuses access to {}",
                Escaped(url)
            )),
            (404, Some((repo, revision, file))) => self.err(format!(
                "not found: no file `{}` in repo `{}` at revision `{}` (HTTP 404)",
                Escaped(file),
                Escaped(repo),
                Escaped(revision)
            )),
            (404, None) => self.err(format!("not found (HTTP 404 from {})", Escaped(url))),
            _ => self.err(format!(
                "the server answered HTTP {code} for {}",
                Escaped(url)
            )),
        }
    }
}

/// The first 64 KiB of an error answer's body (what could be read).
fn error_body(resp: Response<ureq::Body>) -> Vec<u8> {
    let mut body = Vec::new();
    let _ = resp
        .into_body()
        .into_reader()
        .take(64 << 10)
        .read_to_end(&mut body);
    body
}

fn header<'a>(r: &'a Response<ureq::Body>, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

/// `scheme://authority` of a URL, lower-cased; `None` if it has none.
pub(crate) fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let scheme = scheme.to_ascii_lowercase();
    let mut authority = authority.to_ascii_lowercase();
    // The default port is the same origin as none.
    for (s, port) in [("http", ":80"), ("https", ":443")] {
        if scheme == s && authority.ends_with(port) {
            authority.truncate(authority.len() - port.len());
        }
    }
    Some(format!("{scheme}://{authority}"))
}

/// `location` (a redirect's target, or a shard's name) resolved against
/// `base`, as a browser would for the forms servers send.
pub(crate) fn join(base: &str, location: &str) -> String {
    let lower = location.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return location.to_owned();
    }
    let scheme = base.split("://").next().unwrap_or("https");
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}");
    }
    let origin_end = base
        .find("://")
        .map(|i| {
            let after = i + 3;
            after
                + base[after..]
                    .find(['/', '?', '#'])
                    .unwrap_or(base.len() - after)
        })
        .unwrap_or(0);
    if location.starts_with('/') {
        return format!("{}{location}", &base[..origin_end]);
    }
    // Relative to the base's folder (its query dropped).
    let path_end = base[origin_end..]
        .find(['?', '#'])
        .map_or(base.len(), |i| origin_end + i);
    let dir_end = base[origin_end..path_end]
        .rfind('/')
        .map_or(path_end, |i| origin_end + i + 1);
    let mut out = base[..dir_end].to_owned();
    if dir_end == path_end && !out.ends_with('/') {
        out.push('/');
    }
    out.push_str(location);
    out
}

/// Percent-encodes what may not stand in a URL path (keeping `/` when
/// `keep_slash`).
pub(crate) fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let plain = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/');
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    pub(crate) fn new(settings: Settings, token: Option<(String, String)>) -> Client {
        let timeout = Some(settings.timeout);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            // Redirects are followed by hand: see `get`.
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(timeout)
            .timeout_recv_response(timeout)
            .timeout_per_read(timeout)
            .timeout_send_request(timeout)
            .user_agent(concat!("modeltool/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client {
            agent,
            settings,
            token,
            s3: None,
            bucket_region: Mutex::new(None),
        }
    }

    /// What to check when S3 refuses access (empty for other servers).
    fn check(&self) -> &str {
        self.s3.as_ref().map_or("", |c| c.check.as_str())
    }

    /// A client whose requests to the S3 endpoint are signed with SigV4.
    pub(crate) fn with_s3(mut self, config: super::s3::Config) -> Client {
        self.s3 = Some(config);
        self
    }

    /// One GET of `url` (a byte range of it when `range` is given, both
    /// ends inclusive as HTTP has them), redirects followed: `Range` and
    /// `If-Match` go to every hop, the token only to its origin.
    fn get(
        &self,
        names: &Names,
        url: &str,
        range: Option<(u64, u64)>,
        if_match: Option<&str>,
    ) -> std::result::Result<Response<ureq::Body>, Failure> {
        let mut url = url.to_owned();
        let mut region_changed = false;
        for _ in 0..=MAX_REDIRECTS {
            // A request to the S3 endpoint: signed (with credentials) for
            // the bucket's region, and on AWS sent to that region's host.
            let s3 = self.s3.as_ref().filter(|s3| s3.signs_for(&url)).map(|s3| {
                let region = lock(&self.bucket_region)
                    .clone()
                    .unwrap_or_else(|| s3.region.clone());
                (s3, region)
            });
            if let Some((s3, region)) = &s3 {
                url = s3.in_region(&url, region);
            }
            let mut req = self.agent.get(&url);
            if let Some((a, b)) = range {
                req = req.header("Range", format!("bytes={a}-{b}"));
            }
            if let Some(tag) = if_match {
                req = req.header("If-Match", tag);
            }
            if let Some((token_origin, token)) = &self.token {
                if origin(&url).as_deref() == Some(token_origin.as_str()) {
                    req = req.header("Authorization", format!("Bearer {token}"));
                }
            }
            if let Some((s3, region)) = &s3 {
                for (name, value) in s3.sign_get(&url, region) {
                    req = req.header(name, value);
                }
            }
            let resp = match req.call() {
                Ok(r) => r,
                Err(e) => return Err(transport_failure(names, &url, e)),
            };
            if let Some((_, region)) = &s3 {
                if matches!(resp.status().as_u16(), 301 | 400) {
                    // A bucket in another region: S3 answers 301
                    // (PermanentRedirect) or 400 (AuthorizationHeaderMalformed)
                    // and names the region in `x-amz-bucket-region` (or the
                    // body's `<Region>`). Asked again once, for that region.
                    let code = resp.status().as_u16();
                    let told = header(&resp, "x-amz-bucket-region").map(|r| r.trim().to_owned());
                    let location = header(&resp, "location").map(str::to_owned);
                    let body = error_body(resp);
                    let told = told.or_else(|| {
                        super::s3::element(&String::from_utf8_lossy(&body), "Region")
                            .map(|r| r.trim().to_owned())
                    });
                    match told {
                        Some(new) if new != *region && !region_changed => {
                            if !super::aws::is_region(&new) {
                                return Err(Failure::Fatal(names.err(format!(
                                    "S3 answered HTTP {code} naming the bucket's region `{}`, \
                                     which is not a region name",
                                    Escaped(&new)
                                ))));
                            }
                            *lock(&self.bucket_region) = Some(new);
                            region_changed = true;
                            continue;
                        }
                        _ if code == 301 => match location {
                            Some(location) => {
                                url = join(&url, &location);
                                continue;
                            }
                            None => {
                                let told = match &told {
                                    Some(t) => format!(" (S3 says `{}`)", Escaped(t)),
                                    None => String::new(),
                                };
                                return Err(Failure::Fatal(names.err(format!(
                                    "HTTP 301 (PermanentRedirect): the bucket is not in region \
                                     `{region}`{told}: set AWS_REGION to its region"
                                ))));
                            }
                        },
                        _ => return Err(Failure::Fatal(names.s3_error(code, &body, self.check()))),
                    }
                }
            }
            let status = resp.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let Some(location) = header(&resp, "location") else {
                    return Err(Failure::Fatal(names.err(format!(
                        "HTTP {} redirect without a Location from {}",
                        status.as_u16(),
                        Escaped(&url)
                    ))));
                };
                url = join(&url, location);
                continue;
            }
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                return Err(Failure::Transient(format!(
                    "HTTP {} from {}",
                    status.as_u16(),
                    Escaped(&url)
                )));
            }
            return Ok(resp);
        }
        Err(Failure::Fatal(
            names.err(format!("more than {MAX_REDIRECTS} redirects")),
        ))
    }

    /// The body of `url` (a `ListObjectsV2` page), at most `cap` bytes,
    /// with the retries of every request.
    pub(crate) fn fetch_small(&self, names: &Names, url: &str, cap: u64) -> Result<Vec<u8>> {
        self.retrying(names, || {
            let resp = self.get(names, url, None, None)?;
            if resp.status() != StatusCode::OK {
                return Err(Failure::Fatal(names.status_error(resp, url, self.check())));
            }
            let mut body = Vec::new();
            resp.into_body()
                .into_reader()
                .take(cap + 1)
                .read_to_end(&mut body)
                .map_err(io_failure)?;
            if body.len() as u64 > cap {
                return Err(Failure::Fatal(names.err(format!(
                    "an answer of more than {cap} bytes from {}",
                    Escaped(url)
                ))));
            }
            Ok(body)
        })
    }

    /// Runs `attempt` until it succeeds, fails for good, or has failed
    /// transiently `retries + 1` times, waiting `backoff`, doubled each
    /// time, in between.
    fn retrying<T>(
        &self,
        names: &Names,
        mut attempt: impl FnMut() -> std::result::Result<T, Failure>,
    ) -> Result<T> {
        let mut wait = self.settings.backoff;
        let mut tries = 0;
        loop {
            match attempt() {
                Ok(v) => return Ok(v),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient(why)) => {
                    tries += 1;
                    if tries > self.settings.retries {
                        return Err(names.err(format!(
                            "{why} (gave up after {tries} attempt{})",
                            if tries == 1 { "" } else { "s" }
                        )));
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

fn transport_failure(names: &Names, url: &str, e: ureq::Error) -> Failure {
    let why = format!("{} ({})", Escaped(&e.to_string()), Escaped(url));
    match e {
        ureq::Error::Io(_)
        | ureq::Error::Timeout(_)
        | ureq::Error::ConnectionFailed
        | ureq::Error::Protocol(_)
        | ureq::Error::BodyStalled => Failure::Transient(why),
        _ => Failure::Fatal(names.err(why)),
    }
}

fn io_failure(e: std::io::Error) -> Failure {
    Failure::Transient(format!(
        "the connection failed: {}",
        Escaped(&e.to_string())
    ))
}

/// A `Content-Range` header: the inclusive range (`None` for `*`) and the
/// total length (`None` for `*`).
type ContentRange = (Option<(u64, u64)>, Option<u64>);

/// `Content-Range: bytes A-B/TOTAL` as `(Some((A, B)), Some(TOTAL))`, or
/// `bytes */TOTAL` as `(None, Some(TOTAL))`.
fn content_range(v: &str) -> Option<ContentRange> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    if range.trim() == "*" {
        return Some((None, total));
    }
    let (a, b) = range.trim().split_once('-')?;
    Some((Some((a.parse().ok()?, b.parse().ok()?)), total))
}

/// Fills `buf` from `reader`; a short body is a transient failure.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> std::result::Result<(), Failure> {
    reader.read_exact(buf).map_err(io_failure)
}

/// Reads and drops `n` bytes.
fn skip(reader: &mut impl Read, n: u64) -> std::result::Result<(), Failure> {
    let got = std::io::copy(&mut reader.take(n), &mut std::io::sink()).map_err(io_failure)?;
    if got < n {
        return Err(Failure::Transient("the answer ended early".into()));
    }
    Ok(())
}

/// One remote file: its length and ETag from the first answer, and the
/// first bytes it gave.
#[derive(Debug)]
pub(crate) struct RemoteFile {
    client: Arc<Client>,
    url: String,
    names: Names,
    /// What messages name it by.
    pub(crate) shown: PathBuf,
    /// Its length, from the first answer.
    pub(crate) len: u64,
    /// The ETag of the first answer, when it had one.
    etag: Option<String>,
    /// Its first bytes (up to [`FIRST_READ`]).
    head: Vec<u8>,
    /// Answers to the end of the file, kept open where a read stopped.
    streams: Mutex<Vec<Stream>>,
    /// Where recent reads ended: a read starting at one of these is
    /// sequential, and asks for the rest of the file in one answer.
    ends: Mutex<VecDeque<u64>>,
}

impl RemoteFile {
    /// Asks for the first [`FIRST_READ`] bytes of `url`: one request,
    /// which also gives the length and the ETag. A server that ignores
    /// `Range` and sends the whole file is read only that far.
    pub(crate) fn open(client: &Arc<Client>, url: &str, names: Names) -> Result<RemoteFile> {
        let shown = names.shown.clone();
        Self::open_with(client, url, names, false)?.ok_or(LoadError::Remote {
            path: shown,
            reason: "not found (HTTP 404)".into(),
        })
    }

    /// [`RemoteFile::open`], with `None` for a file the server does not
    /// have (HTTP 404).
    pub(crate) fn open_if_found(
        client: &Arc<Client>,
        url: &str,
        names: Names,
    ) -> Result<Option<RemoteFile>> {
        Self::open_with(client, url, names, true)
    }

    fn open_with(
        client: &Arc<Client>,
        url: &str,
        names: Names,
        missing_ok: bool,
    ) -> Result<Option<RemoteFile>> {
        let found = client.retrying(&names, || {
            let resp = client.get(&names, url, Some((0, FIRST_READ - 1)), None)?;
            let status = resp.status();
            let etag = header(&resp, "etag").map(str::to_owned);
            let range = header(&resp, "content-range").and_then(content_range);
            match status.as_u16() {
                206 => {
                    let Some((Some((0, last)), Some(total))) = range else {
                        return Err(Failure::Fatal(names.err(
                            "HTTP 206 without a valid Content-Range starting at byte 0".into(),
                        )));
                    };
                    if last >= total || last >= FIRST_READ {
                        return Err(Failure::Fatal(names.err(format!(
                            "HTTP 206 for bytes 0-{last} of {total}, not what was asked"
                        ))));
                    }
                    let mut head = vec![0u8; (last + 1) as usize];
                    fill(&mut resp.into_body().into_reader(), &mut head)?;
                    Ok(Some((total, etag, head)))
                }
                200 => {
                    // The whole file is coming: read what we asked for and
                    // drop the connection.
                    let Some(total) =
                        header(&resp, "content-length").and_then(|v| v.trim().parse::<u64>().ok())
                    else {
                        return Err(Failure::Fatal(
                            names.err(
                                "the server ignores Range and gives no Content-Length: \
                             the file's length is unknown"
                                    .into(),
                            ),
                        ));
                    };
                    let mut head = vec![0u8; total.min(FIRST_READ) as usize];
                    fill(&mut resp.into_body().into_reader(), &mut head)?;
                    Ok(Some((total, etag, head)))
                }
                // An empty file has no byte 0.
                416 if matches!(range, Some((None, Some(0)))) => Ok(Some((0, etag, Vec::new()))),
                404 if missing_ok => Ok(None),
                _ => Err(Failure::Fatal(names.status_error(
                    resp,
                    url,
                    client.check(),
                ))),
            }
        })?;
        let Some((len, etag, head)) = found else {
            return Ok(None);
        };
        Ok(Some(RemoteFile {
            client: client.clone(),
            url: url.to_owned(),
            shown: names.shown.clone(),
            names,
            len,
            etag,
            head,
            streams: Mutex::new(Vec::new()),
            ends: Mutex::new(VecDeque::new()),
        }))
    }

    /// The URL it is fetched from.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The bytes of the first answer.
    pub(crate) fn head(&self) -> &[u8] {
        &self.head
    }

    /// The strong ETag to send as `If-Match` (a weak one never matches
    /// there; it is still compared on each answer).
    fn if_match(&self) -> Option<&str> {
        self.etag.as_deref().filter(|t| !t.starts_with("W/"))
    }

    /// Opens the answer for bytes `start..end` (exclusive end), checked to
    /// be of the same file: the same ETag and length. The reader is at
    /// `start`.
    fn range(
        &self,
        start: u64,
        end: u64,
    ) -> std::result::Result<ureq::BodyReader<'static>, Failure> {
        let resp = self.client.get(
            &self.names,
            &self.url,
            Some((start, end - 1)),
            self.if_match(),
        )?;
        let status = resp.status();
        let changed = |detail: String| {
            Failure::Fatal(LoadError::Changed {
                path: self.shown.clone(),
                detail,
            })
        };
        if status == StatusCode::PRECONDITION_FAILED {
            return Err(changed(format!(
                "the server no longer has the version with ETag {}",
                Escaped(self.etag.as_deref().unwrap_or("?"))
            )));
        }
        if !matches!(status.as_u16(), 200 | 206) {
            return Err(Failure::Fatal(self.names.status_error(
                resp,
                &self.url,
                self.client.check(),
            )));
        }
        let etag = header(&resp, "etag");
        if let (Some(was), Some(now)) = (self.etag.as_deref(), etag) {
            if was != now {
                return Err(changed(format!(
                    "on the server: its ETag was {}, now {}",
                    Escaped(was),
                    Escaped(now)
                )));
            }
        }
        let total = if status == StatusCode::PARTIAL_CONTENT {
            match header(&resp, "content-range").and_then(content_range) {
                Some((Some((a, b)), total)) if a == start && b == end - 1 => total,
                _ => {
                    return Err(Failure::Fatal(self.names.err(format!(
                        "HTTP 206 without the Content-Range asked for (bytes {start}-{})",
                        end - 1
                    ))));
                }
            }
        } else {
            header(&resp, "content-length").and_then(|v| v.trim().parse().ok())
        };
        if let Some(total) = total {
            if total != self.len {
                return Err(changed(format!(
                    "on the server: it was {} bytes long, now {total}",
                    self.len
                )));
            }
        }
        let mut reader = resp.into_body().into_reader();
        if status == StatusCode::OK {
            // The server ignores Range: skip to the bytes wanted.
            skip(&mut reader, start)?;
        }
        Ok(reader)
    }

    fn past_end(&self, end: u64) -> LoadError {
        LoadError::Truncated {
            path: self.shown.clone(),
            expected: end,
            actual: self.len,
        }
    }

    /// Fills `buf` from `offset`: from the first answer's bytes as far as
    /// they go, then one range request for exactly the rest (or the
    /// continuation of a sequential read, see [`RemoteFile::read_chunks`]).
    pub(crate) fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| self.past_end(offset.saturating_add(buf.len() as u64)))?;
        let cached = (self.head.len() as u64).clamp(offset, end);
        let n = (cached - offset) as usize;
        if n > 0 {
            buf[..n].copy_from_slice(&self.head[offset as usize..cached as usize]);
        }
        if cached < end {
            let rest = &mut buf[n..];
            let mut at = 0;
            self.stream((cached, end), rest.len(), &mut |c| {
                rest[at..at + c.len()].copy_from_slice(c);
                at += c.len();
                Ok(())
            })?;
        }
        self.note_end(end);
        Ok(())
    }

    /// Streams bytes `start..end` in chunks of at most `chunk` bytes to
    /// `f`. A read that starts where an earlier one ended is sequential
    /// (a tensor after a tensor, as `verify` reads them): it asks for the
    /// rest of the file in one answer and leaves it open for the next read,
    /// so a file read in order costs one request, not one per tensor (one
    /// per run of tensors a thread reads in order, when threads share it).
    pub(crate) fn read_chunks(
        &self,
        (start, end): (u64, u64),
        chunk: usize,
        f: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        if end > self.len {
            return Err(self.past_end(end));
        }
        if end <= self.head.len() as u64 {
            for c in self.head[start as usize..end as usize].chunks(chunk.max(1)) {
                f(c)?;
            }
        } else {
            self.stream((start, end), chunk, f)?;
        }
        self.note_end(end);
        Ok(())
    }

    fn note_end(&self, end: u64) {
        let mut ends = lock(&self.ends);
        if !ends.contains(&end) {
            ends.push_back(end);
            if ends.len() > MAX_ENDS {
                ends.pop_front();
            }
        }
    }

    /// One request (or the continuation of an open answer) for
    /// `start..end`, resumed where it broke off after a transient failure,
    /// with the same `If-Match`.
    fn stream(
        &self,
        (start, end): (u64, u64),
        chunk: usize,
        f: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut open = {
            let mut streams = lock(&self.streams);
            streams
                .iter()
                .position(|s| s.pos == start)
                .map(|i| streams.swap_remove(i).reader)
        };
        let sequential = open.is_some() || lock(&self.ends).contains(&start);
        let answer_end = if sequential { self.len } else { end };
        let mut buf = vec![0u8; chunk.min((end - start) as usize).max(1)];
        let mut at = start;
        let mut breaks = 0;
        while at < end {
            let mut reader = match open.take() {
                Some(r) => r,
                None => self
                    .client
                    .retrying(&self.names, || self.range(at, answer_end))?,
            };
            // Read until done or a transient failure; then resume from `at`.
            let mut broke = None;
            while at < end {
                let n = buf.len().min((end - at) as usize);
                match reader.read_exact(&mut buf[..n]) {
                    Ok(()) => {
                        f(&buf[..n])?;
                        at += n as u64;
                    }
                    Err(e) => {
                        broke = Some(e);
                        break;
                    }
                }
            }
            match broke {
                None if answer_end > end => {
                    let mut streams = lock(&self.streams);
                    streams.push(Stream { pos: end, reader });
                    if streams.len() > MAX_STREAMS {
                        streams.remove(0);
                    }
                }
                None => {}
                Some(e) => {
                    // A stream that keeps breaking gives up like any request.
                    breaks += 1;
                    if breaks > self.client.settings.retries {
                        return Err(self.names.err(format!(
                            "the connection failed: {} (gave up after {breaks} attempts)",
                            Escaped(&e.to_string())
                        )));
                    }
                    std::thread::sleep(self.client.settings.backoff);
                }
            }
        }
        Ok(())
    }
}
