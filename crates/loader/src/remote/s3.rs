//! `s3://BUCKET/KEY` (see `docs/REMOTE.md`): the standard AWS environment, SigV4 signatures over
//! the same HTTP client (so range reads, `If-Match`, retries and timeouts
//! are those of every remote file), and `ListObjectsV2` for a prefix.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use modeltool_format::text::Escaped;
use sha2::{Digest, Sha256};

use super::http::{encode, origin};

/// The hash of an empty body: what a GET signs as its payload.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// At most this many keys are listed under a prefix.
pub(crate) const MAX_KEYS: usize = 10_000;

/// The AWS settings: of the environment, else of the profile in the
/// shared files (`remote/aws.rs`).
#[derive(Clone)]
pub(crate) struct Config {
    /// The access key and its secret, when given (else requests go
    /// unsigned, as to a public bucket).
    pub(super) keys: Option<(String, String)>,
    /// The session token of temporary credentials.
    pub(super) token: Option<String>,
    /// The region requests are signed for (and, on AWS, sent to), unless
    /// the bucket turns out to be in another.
    pub(crate) region: String,
    /// The endpoint without a trailing `/` (path-style addressing).
    pub(super) endpoint: Option<String>,
    /// What to check when S3 refuses the request: the variables or the
    /// profile the credentials came from.
    pub(super) check: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret or the token.
        f.debug_struct("Config")
            .field("signed", &self.keys.is_some())
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

impl Config {
    /// The settings of the environment and the shared files, for the
    /// address `shown` (which errors name).
    pub(crate) fn load(shown: &std::path::Path) -> crate::Result<Config> {
        super::aws::resolve(shown, &var)
    }

    /// The URL of the bucket, ending in `/`: `{endpoint}/{bucket}/` when an
    /// endpoint is given, else `https://{bucket}.s3.{region}.amazonaws.com/`.
    pub(crate) fn bucket_url(&self, bucket: &str) -> String {
        match &self.endpoint {
            Some(e) => format!("{e}/{}/", encode(bucket, false)),
            None => format!("https://{bucket}.s3.{}.amazonaws.com/", self.region),
        }
    }

    /// The URL of `key` in `bucket`.
    pub(crate) fn object_url(&self, bucket: &str, key: &str) -> String {
        format!("{}{}", self.bucket_url(bucket), encode(key, true))
    }

    /// The `ListObjectsV2` URL of the keys right under `prefix` (one page).
    pub(crate) fn list_url(&self, bucket: &str, prefix: &str, token: Option<&str>) -> String {
        // Parameters in sorted order, as the signature's canonical query has them.
        let mut q = Vec::new();
        if let Some(t) = token {
            q.push(format!("continuation-token={}", encode(t, false)));
        }
        q.push("delimiter=%2F".to_owned());
        q.push("list-type=2".to_owned());
        q.push("max-keys=1000".to_owned());
        q.push(format!("prefix={}", encode(prefix, false)));
        format!("{}?{}", self.bucket_url(bucket), q.join("&"))
    }

    /// The headers that sign a GET of `url` now for `region`, when
    /// credentials are set: `x-amz-date`, `x-amz-content-sha256`,
    /// `x-amz-security-token` (with a session token) and `Authorization`.
    pub(crate) fn sign_get(&self, url: &str, region: &str) -> Vec<(&'static str, String)> {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.sign_get_at(url, region, secs)
    }

    /// `url` (built for [`Config::region`]) as it is sent when the bucket
    /// is in `region`: on AWS, the host names the region
    /// (`BUCKET.s3.REGION.amazonaws.com`); another endpoint keeps its URL.
    pub(crate) fn in_region(&self, url: &str, region: &str) -> String {
        if self.endpoint.is_some() || region == self.region {
            return url.to_owned();
        }
        let (host, _, _) = split_url(url);
        let old = format!(".s3.{}.amazonaws.com", self.region);
        match host.strip_suffix(&old) {
            Some(bucket) if url.starts_with("https://") => {
                let rest = &url["https://".len() + host.len()..];
                format!("https://{bucket}.s3.{region}.amazonaws.com{rest}")
            }
            _ => url.to_owned(),
        }
    }

    fn sign_get_at(&self, url: &str, region: &str, unix_secs: u64) -> Vec<(&'static str, String)> {
        let Some((access, secret)) = &self.keys else {
            return Vec::new();
        };
        let date_time = amz_date(unix_secs);
        let date = &date_time[..8];
        let (host, path, query) = split_url(url);
        let mut canonical_query: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
        canonical_query.sort_unstable();
        let canonical_query: Vec<String> = canonical_query
            .iter()
            .map(|p| {
                if p.contains('=') {
                    (*p).to_owned()
                } else {
                    format!("{p}=")
                }
            })
            .collect();
        let mut headers = vec![
            ("host", host.to_owned()),
            ("x-amz-content-sha256", EMPTY_SHA256.to_owned()),
            ("x-amz-date", date_time.clone()),
        ];
        if let Some(t) = &self.token {
            headers.push(("x-amz-security-token", t.clone()));
        }
        let signed_headers: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
        let signed_headers = signed_headers.join(";");
        let canonical_headers: String = headers
            .iter()
            .map(|(n, v)| format!("{n}:{}\n", v.trim()))
            .collect();
        let canonical_request = format!(
            "GET\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{EMPTY_SHA256}",
            if path.is_empty() { "/" } else { path },
            canonical_query.join("&"),
        );
        let scope = format!("{date}/{region}/s3/aws4_request");
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{date_time}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical_request.as_bytes()))
        );
        let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
        for part in [region, "s3", "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
        let mut out: Vec<(&'static str, String)> =
            headers.into_iter().filter(|(n, _)| *n != "host").collect();
        out.push((
            "Authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={signed_headers}, \
                 Signature={signature}"
            ),
        ));
        out
    }

    /// The origin requests are signed for: the endpoint's, or any
    /// `*.amazonaws.com` host on AWS.
    pub(crate) fn signs_for(&self, url: &str) -> bool {
        match &self.endpoint {
            Some(e) => origin(e).is_some_and(|o| origin(url).as_deref() == Some(o.as_str())),
            None => origin(url)
                .is_some_and(|o| o.starts_with("https://") && o.ends_with(".amazonaws.com")),
        }
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// `(host[:port], path, query)` of a URL, the default port dropped as an
/// HTTP client drops it from `Host`.
fn split_url(url: &str) -> (&str, &str, &str) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let rest = rest.split('#').next().unwrap_or(rest);
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let mut host = &rest[..auth_end];
    let default = if scheme.eq_ignore_ascii_case("http") {
        ":80"
    } else {
        ":443"
    };
    if let Some(h) = host.strip_suffix(default) {
        host = h;
    }
    let after = &rest[auth_end..];
    let (path, query) = after.split_once('?').unwrap_or((after, ""));
    (host, path, query)
}

/// `YYYYMMDDTHHMMSSZ` of a Unix time (UTC).
fn amz_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// One page of a `ListObjectsV2` answer: the keys, and the token of the
/// next page when the listing is truncated.
pub(crate) fn parse_list(xml: &str) -> (Vec<String>, Option<String>) {
    let mut keys = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<Contents>") {
        rest = &rest[i + "<Contents>".len()..];
        let end = rest.find("</Contents>").unwrap_or(rest.len());
        if let Some(k) = element(&rest[..end], "Key") {
            keys.push(k);
        }
        rest = &rest[end..];
    }
    let truncated = element(xml, "IsTruncated").is_some_and(|t| t.trim() == "true");
    let next = element(xml, "NextContinuationToken").filter(|_| truncated);
    (keys, next)
}

/// The text of the first `<name>...</name>`, XML escapes undone.
pub(crate) fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&close)?;
    Some(unescape(&xml[start..start + len]))
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(semi) = rest.find(';').filter(|&j| j <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e => e
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| e.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The message for an S3 error answer: which bucket or key, which
/// environment variables.
/// `check` says what to check when access is refused.
pub(crate) fn status_message(
    code: u16,
    s3_code: Option<&str>,
    bucket: &str,
    key: &str,
    check: &str,
) -> String {
    let detail = s3_code.map_or(String::new(), |c| format!(", {}", Escaped(c)));
    match (code, s3_code) {
        (404, Some("NoSuchBucket")) => format!(
            "not found: no bucket `{}` (HTTP 404, NoSuchBucket)",
            Escaped(bucket)
        ),
        (404, _) => format!(
            "not found: no key `{}` in bucket `{}` (HTTP 404{detail})",
            Escaped(key),
            Escaped(bucket)
        ),
        (401 | 403, _) => format!(
            "access denied to key `{}` in bucket `{}` (HTTP {code}{detail}): {check}",
            Escaped(key),
            Escaped(bucket)
        ),
        _ => format!(
            "S3 answered HTTP {code}{detail} for key `{}` in bucket `{}`",
            Escaped(key),
            Escaped(bucket)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of AWS's SigV4 documentation for S3 ("Example: GET
    /// Bucket (List Objects)"), with its published signature.
    #[test]
    fn signature_matches_the_documented_example() {
        let config = Config {
            keys: Some((
                "AKIAIOSFODNN7EXAMPLE".into(),
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            )),
            token: None,
            region: "us-east-1".into(),
            endpoint: None,
            check: String::new(),
        };
        // 2013-05-24T00:00:00Z
        let headers = config.sign_get_at(
            "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J",
            "us-east-1",
            1_369_353_600,
        );
        let auth = &headers
            .iter()
            .find(|(n, _)| *n == "Authorization")
            .expect("signed")
            .1;
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
             Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
        assert_eq!(amz_date(1_369_353_600), "20130524T000000Z");
        assert_eq!(amz_date(951_782_400), "20000229T000000Z");
    }

    #[test]
    fn a_bucket_in_another_region_is_addressed_at_that_region_on_aws_only() {
        let mut config = Config {
            keys: None,
            token: None,
            region: "us-east-1".into(),
            endpoint: None,
            check: String::new(),
        };
        let url = config.object_url("b", "m/x.safetensors");
        assert_eq!(url, "https://b.s3.us-east-1.amazonaws.com/m/x.safetensors");
        assert_eq!(
            config.in_region(&url, "eu-west-1"),
            "https://b.s3.eu-west-1.amazonaws.com/m/x.safetensors"
        );
        assert_eq!(config.in_region(&url, "us-east-1"), url);
        assert_eq!(
            config.in_region("https://cdn.example/m", "eu-west-1"),
            "https://cdn.example/m"
        );
        config.endpoint = Some("http://127.0.0.1:9000".into());
        let url = config.object_url("b", "m");
        assert_eq!(
            config.in_region(&url, "eu-west-1"),
            url,
            "path-style keeps its URL"
        );
    }

    #[test]
    fn list_pages_give_keys_and_the_next_token() {
        let xml = "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a/x&amp;y.json</Key>\
                   </Contents><Contents><Key>a/m.safetensors</Key></Contents>\
                   <NextContinuationToken>t&lt;1</NextContinuationToken></ListBucketResult>";
        let (keys, next) = parse_list(xml);
        assert_eq!(keys, ["a/x&y.json", "a/m.safetensors"]);
        assert_eq!(next.as_deref(), Some("t<1"));
    }
}
