//! The one HTTP fetch every HTTP source uses: timeouts, conditional GET, a body cap counted
//! after decompression, Retry-After, and a guard against private addresses (SSRF).
//! It does not parse bodies, retry, or schedule anything: that is the source's and the poll loop's job.

use super::config::Common;
use super::{SourceError, SourceState};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{
    HeaderMap, HeaderValue, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, RETRY_AFTER,
};
use reqwest::{StatusCode, Url};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Sent with every request so feed owners can see who polls them and how to reach us.
pub(crate) const USER_AGENT: &str = concat!(
    "mentiondesk/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/mentiondesk)"
);

/// A stream that sends nothing (not even a heartbeat) for this long is taken for dead.
pub(crate) const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A 2xx answer to an API request: its headers (rate limits, `Link`) and its capped body.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
}

/// Any answer to an API request, whatever its status: for APIs whose error bodies say what
/// went wrong (XRPC answers an expired token with 400 `{"error":"ExpiredToken",…}`), so the
/// caller can tell one 400 from another. The body is capped like every other.
#[derive(Debug, Clone)]
pub(crate) struct ApiReply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) bytes: Vec<u8>,
}

impl ApiReply {
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The error `Fetcher::get` would have returned for this answer, with the wait the server
    /// asked for (Retry-After, or a rate-limit reset header on a 429).
    pub(crate) fn status_error(&self) -> SourceError {
        SourceError::Status {
            status: self.status,
            retry_after: retry_after(self.status, &self.headers, chrono::Utc::now()),
        }
    }
}

/// Redirect hops followed before giving up; feeds rarely need more than two.
const MAX_REDIRECTS: usize = 5;

/// The hint every refusal carries, so an operator knows the switch exists.
const ALLOW_PRIVATE_HINT: &str =
    "set allow_private = true on the source if fetching a private address is intended";

/// What one fetch produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// 304: nothing changed since the validators in the state.
    NotModified,
    /// 2xx: the (decompressed) body and the validators to send next time.
    Body {
        bytes: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

/// A configured HTTP client for one source. Build it once and reuse it, so connections are pooled.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    /// Same guard, no overall timeout: for streams that stay open for hours.
    stream_client: reqwest::Client,
    timeout: Duration,
    max_body_bytes: u64,
    allow_private: bool,
}

impl Fetcher {
    /// Builds the client from the source's timeout, body cap and `allow_private` switch.
    ///
    /// System proxies are ignored on purpose: through a proxy the proxy resolves the host,
    /// and the private-address guard would then check nothing.
    pub fn new(spec: &Common) -> Result<Fetcher, SourceError> {
        Fetcher::build(spec, &[], false)
    }

    /// Like `new`, but a redirect that leaves the origin (scheme, host, port) of the URL first
    /// asked is not followed: the 3xx comes back as the answer. For requests that carry
    /// credentials in headers of their own (`Api-Key`), which reqwest keeps on a redirect to
    /// another host (it drops only `Authorization` and cookies).
    pub(crate) fn same_origin(spec: &Common) -> Result<Fetcher, SourceError> {
        Fetcher::build(spec, &[], true)
    }

    /// A fetcher where each `(host, addr)` resolves to `addr` without the private-address
    /// filter: tests pin a public-looking name (`public.test`) to their 127.0.0.1 fake, so
    /// the guard on redirects and IP literals can be exercised with `allow_private = false`
    /// without sending anything off the machine. Test-only, so production has no bypass.
    #[cfg(test)]
    pub(crate) fn with_pinned_hosts(
        spec: &Common,
        pinned: &[(&str, SocketAddr)],
    ) -> Result<Fetcher, SourceError> {
        Fetcher::build(spec, pinned, false)
    }

    fn build(
        spec: &Common,
        pinned: &[(&str, SocketAddr)],
        same_origin: bool,
    ) -> Result<Fetcher, SourceError> {
        let allow_private = spec.allow_private;
        let client_builder = |stream: bool| {
            let mut builder = reqwest::Client::builder()
                .user_agent(USER_AGENT)
                .connect_timeout(spec.timeout)
                .no_proxy()
                .redirect(redirect_policy(allow_private, same_origin));
            builder = if stream {
                builder.read_timeout(STREAM_IDLE_TIMEOUT)
            } else {
                builder.timeout(spec.timeout)
            };
            if !allow_private {
                builder = builder.dns_resolver(Arc::new(PublicOnlyResolver));
            }
            // reqwest consults these overrides before the resolver above.
            for (host, addr) in pinned {
                builder = builder.resolve(host, *addr);
            }
            builder.build().map_err(|e| {
                SourceError::Config(format!("cannot build the HTTP client: {}", chain(&e)))
            })
        };
        Ok(Fetcher {
            client: client_builder(false)?,
            stream_client: client_builder(true)?,
            timeout: spec.timeout,
            max_body_bytes: spec.max_body_bytes,
            allow_private,
        })
    }

    /// GETs `url`, sending the validators in `state` so an unchanged resource costs a 304.
    /// Does not modify `state`: the caller stores the returned validators once it used the body.
    pub async fn fetch(&self, url: &str, state: &SourceState) -> Result<Fetched, SourceError> {
        self.fetch_with(url, state, &[]).await
    }

    /// Like `fetch`, with extra request headers (API sources: `Accept`, auth).
    /// Header values are never logged or echoed in errors.
    pub(crate) async fn fetch_with(
        &self,
        url: &str,
        state: &SourceState,
        extra_headers: &[(&str, &str)],
    ) -> Result<Fetched, SourceError> {
        let (parsed, shown) = self.checked(url)?;
        let mut headers = HeaderMap::new();
        if let Some(etag) = state.etag.as_deref().and_then(header_value) {
            headers.insert(IF_NONE_MATCH, etag);
        }
        if let Some(lm) = state.last_modified.as_deref().and_then(header_value) {
            headers.insert(IF_MODIFIED_SINCE, lm);
        }
        let request = with_headers(self.client.get(parsed).headers(headers), extra_headers);
        let response = self.send(request, &shown).await?;
        if response.status() == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        let etag = header_string(response.headers(), &ETAG);
        let last_modified = header_string(response.headers(), &LAST_MODIFIED);
        let bytes = self.read_body(response, &shown).await?;
        Ok(Fetched::Body {
            bytes,
            etag,
            last_modified,
        })
    }

    /// GETs an API resource and returns its headers (rate limits, `Link`) with the capped body.
    pub async fn get(
        &self,
        url: &str,
        extra_headers: &[(&str, &str)],
    ) -> Result<ApiResponse, SourceError> {
        let (parsed, shown) = self.checked(url)?;
        let request = with_headers(self.client.get(parsed), extra_headers);
        let response = self.send(request, &shown).await?;
        let headers = response.headers().clone();
        let bytes = self.read_body(response, &shown).await?;
        Ok(ApiResponse { headers, bytes })
    }

    /// POSTs a form with HTTP Basic credentials (OAuth token endpoints). The credentials are
    /// sent, never logged, and never appear in an error.
    pub(crate) async fn post_form(
        &self,
        url: &str,
        extra_headers: &[(&str, &str)],
        basic_auth: (&str, &str),
        form: &[(&str, &str)],
    ) -> Result<ApiResponse, SourceError> {
        let (parsed, shown) = self.checked(url)?;
        let request = with_headers(self.client.post(parsed), extra_headers)
            .basic_auth(basic_auth.0, Some(basic_auth.1))
            .form(form);
        let response = self.send(request, &shown).await?;
        let headers = response.headers().clone();
        let bytes = self.read_body(response, &shown).await?;
        Ok(ApiResponse { headers, bytes })
    }

    /// Sends a request with an optional JSON body and returns the answer whatever its status
    /// (see `ApiReply`); only transport failures, refusals and an oversized body are errors.
    /// Header values and the body are never logged or echoed in errors.
    pub(crate) async fn request_any(
        &self,
        method: reqwest::Method,
        url: &str,
        extra_headers: &[(&str, &str)],
        json_body: Option<&serde_json::Value>,
    ) -> Result<ApiReply, SourceError> {
        let (parsed, shown) = self.checked(url)?;
        let mut request = with_headers(self.client.request(method, parsed), extra_headers);
        if let Some(body) = json_body {
            request = request.json(body);
        }
        let response = self.send_raw(request, &shown).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = self.read_body(response, &shown).await?;
        Ok(ApiReply {
            status,
            headers,
            bytes,
        })
    }

    /// Opens a long-lived response (server-sent events). It has no overall timeout, only
    /// `STREAM_IDLE_TIMEOUT` between chunks, so a silent dead connection is still noticed.
    /// Read it with `next_chunk`, which keeps the body cap per event.
    pub(crate) async fn open_stream(
        &self,
        url: &str,
        extra_headers: &[(&str, &str)],
    ) -> Result<reqwest::Response, SourceError> {
        let (parsed, shown) = self.checked(url)?;
        let request = with_headers(self.stream_client.get(parsed), extra_headers);
        self.send(request, &shown).await
    }

    /// The next chunk of a stream opened with `open_stream`; `None` when the server ended it.
    pub(crate) async fn next_chunk(
        &self,
        response: &mut reqwest::Response,
        shown_url: &str,
    ) -> Result<Option<bytes::Bytes>, SourceError> {
        response
            .chunk()
            .await
            .map_err(|e| self.map_error(e, shown_url))
    }

    /// The largest body (or streamed event) this fetcher accepts.
    pub(crate) fn max_body_bytes(&self) -> u64 {
        self.max_body_bytes
    }

    fn checked(&self, url: &str) -> Result<(Url, String), SourceError> {
        let parsed = Url::parse(url).map_err(|e| SourceError::Refused {
            url: redact_url(url),
            reason: format!("not a valid URL: {e}"),
        })?;
        check_url(&parsed, self.allow_private)?;
        Ok((parsed, redact_url(url)))
    }

    /// Sends a request; a status other than 2xx or 304 becomes `SourceError::Status` with the
    /// wait the server asked for (Retry-After, or X-Ratelimit-Reset on a 429).
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        shown: &str,
    ) -> Result<reqwest::Response, SourceError> {
        let response = self.send_raw(request, shown).await?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED || status.is_success() {
            return Ok(response);
        }
        Err(SourceError::Status {
            status: status.as_u16(),
            retry_after: retry_after(status.as_u16(), response.headers(), chrono::Utc::now()),
        })
    }

    /// Sends a request and returns the response whatever its status.
    async fn send_raw(
        &self,
        request: reqwest::RequestBuilder,
        shown: &str,
    ) -> Result<reqwest::Response, SourceError> {
        let response = request.send().await.map_err(|e| self.map_error(e, shown))?;
        tracing::debug!(url = %shown, status = response.status().as_u16(), "fetched");
        Ok(response)
    }

    /// Reads the body chunk by chunk (already decompressed by reqwest) and stops as soon as the
    /// cap is crossed, so a gzip bomb costs at most the cap plus one chunk of memory.
    async fn read_body(
        &self,
        mut response: reqwest::Response,
        shown: &str,
    ) -> Result<Vec<u8>, SourceError> {
        let limit = self.max_body_bytes;
        if response.content_length().is_some_and(|len| len > limit) {
            return Err(SourceError::TooLarge { limit });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.map_error(e, shown))?
        {
            if bytes.len() as u64 + chunk.len() as u64 > limit {
                return Err(SourceError::TooLarge { limit });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// Turns a reqwest error into ours without its URL (which may carry a token in its query).
    fn map_error(&self, e: reqwest::Error, shown_url: &str) -> SourceError {
        if let Some(refused) = find_refusal(&e) {
            return SourceError::Refused {
                url: shown_url.to_string(),
                reason: refused.to_string(),
            };
        }
        if e.is_timeout() {
            return SourceError::Timeout(self.timeout);
        }
        let e = e.without_url();
        if e.is_decode() || e.is_body() {
            // A broken gzip stream or a connection cut mid-body.
            return SourceError::Network(format!("reading the body failed: {}", chain(&e)));
        }
        SourceError::Network(chain(&e))
    }
}

/// Why the guard refused an address; found again in reqwest's error chain by downcasting.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}; {ALLOW_PRIVATE_HINT}")]
pub(crate) struct PrivateAddress(String);

fn find_refusal<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a PrivateAddress> {
    let mut current: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<PrivateAddress>() {
            return Some(found);
        }
        current = err.source();
    }
    None
}

/// An error with its causes, `a: b: c`, because reqwest's top-level message alone says little.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut current = e.source();
    while let Some(err) = current {
        let msg = err.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        current = err.source();
    }
    out
}

fn with_headers(
    mut request: reqwest::RequestBuilder,
    extra: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request
}

/// Seconds until a rate-limit window resets, as Reddit (and others) send it.
pub(crate) fn ratelimit_reset(headers: &HeaderMap) -> Option<Duration> {
    let secs: f64 = headers
        .get("x-ratelimit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// The wait a non-2xx answer asks for: `Retry-After` on any status; on a 429 without it,
/// `X-Ratelimit-Reset` (seconds left, as Reddit sends it) or `RateLimit-Reset` (see
/// `ratelimit_reset_at`).
pub(crate) fn retry_after(
    status: u16,
    headers: &HeaderMap,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now))
        .or_else(|| {
            (status == StatusCode::TOO_MANY_REQUESTS.as_u16())
                .then(|| ratelimit_reset(headers).or_else(|| ratelimit_reset_at(headers, now)))
                .flatten()
        })
}

/// The wait until `RateLimit-Reset`. Bluesky sends it as a Unix time (`1736759405`); the IETF
/// draft it comes from means seconds left. A value past 10^9 can only be a Unix time (seconds
/// left would be over 31 years), so both readings are accepted. Capped at a day.
pub(crate) fn ratelimit_reset_at(
    headers: &HeaderMap,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let value: i64 = headers
        .get("ratelimit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let secs = if value >= 1_000_000_000 {
        value - now.timestamp()
    } else {
        value
    };
    Some(Duration::from_secs(secs.clamp(0, 86_400) as u64))
}

fn header_value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

fn header_string(headers: &HeaderMap, name: &reqwest::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Rejects schemes other than http(s) and, unless allowed, IP-literal hosts in private ranges
/// (an IP literal never reaches the resolver, so the resolver cannot catch it).
fn check_url(url: &Url, allow_private: bool) -> Result<(), SourceError> {
    let refuse = |reason: String| SourceError::Refused {
        url: redact_url(url.as_str()),
        reason,
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refuse(format!(
            "scheme {:?} is not allowed, only http and https",
            url.scheme()
        )));
    }
    if !allow_private {
        if let Some(reason) = literal_host_refusal(url) {
            return Err(refuse(reason.to_string()));
        }
    }
    Ok(())
}

fn literal_host_refusal(url: &Url) -> Option<PrivateAddress> {
    let host = url.host_str()?;
    let ip: IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    is_private(ip).then(|| PrivateAddress(format!("{ip} is a private or local address")))
}

/// Follows up to `MAX_REDIRECTS` hops, re-checking scheme and IP-literal hosts on each hop;
/// hosts by name are checked again by the resolver when the hop connects. With
/// `same_origin`, a hop off the first URL's origin is not followed (the 3xx is the answer).
fn redirect_policy(allow_private: bool, same_origin: bool) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if same_origin
            && attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() != attempt.url().origin())
        {
            return attempt.stop();
        }
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        if !matches!(attempt.url().scheme(), "http" | "https") {
            let scheme = attempt.url().scheme().to_string();
            return attempt.error(format!("redirect to scheme {scheme:?} is not allowed"));
        }
        if !allow_private {
            if let Some(refusal) = literal_host_refusal(attempt.url()) {
                return attempt.error(refusal);
            }
        }
        attempt.follow()
    })
}

/// Resolves with the system resolver, then drops private addresses; refuses if none is left.
/// Installed as reqwest's resolver, it applies to the first request and to every redirect.
#[derive(Debug, Clone, Copy)]
struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|addr| !is_private(addr.ip()))
                .collect();
            if public.is_empty() && !resolved.is_empty() {
                let refusal = PrivateAddress(format!(
                    "{host} resolves only to private or local addresses ({})",
                    resolved[0].ip()
                ));
                return Err(Box::new(refusal) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// True for addresses a public feed never lives on: loopback, RFC 1918, link-local (cloud
/// metadata at 169.254.169.254), CGNAT, unspecified, broadcast, unique-local and site-local IPv6,
/// and IPv4 addresses embedded in IPv6 (mapped, compatible, NAT64) that are any of those.
pub(crate) fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => is_private_v6(v6),
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments 192.0.0.0/24
}

fn is_private_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    if ip.is_loopback() || ip.is_unspecified() {
        return true;
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_private_v4(v4);
    }
    // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 (64:ff9b::/96) embed an IPv4 address.
    let embedded = Ipv4Addr::new(
        (seg[6] >> 8) as u8,
        seg[6] as u8,
        (seg[7] >> 8) as u8,
        seg[7] as u8,
    );
    if seg[..6] == [0, 0, 0, 0, 0, 0] || seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_private_v4(embedded);
    }
    (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (seg[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated, still routable inside)
}

/// Decodes a JSON API body. A cut-off body ("EOF while parsing") and a body that is not the
/// expected shape are both parse errors naming `what`, so `/healthz` says which API broke.
pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> Result<T, SourceError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let hint = if e.is_eof() {
            " (the body ends early; was it cut off?)"
        } else {
            ""
        };
        SourceError::Parse(format!("malformed JSON from {what}: {e}{hint}"))
    })
}

/// A URL safe to log or put in an error: no userinfo, no query, no fragment (tokens live there).
pub(crate) fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            let had_query = u.query().is_some();
            u.set_query(None);
            u.set_fragment(None);
            let mut s = u.to_string();
            if had_query {
                s.push_str("?…");
            }
            s
        }
        Err(_) => "<invalid url>".to_string(),
    }
}

/// Parses Retry-After: delta-seconds, or an HTTP-date turned into the time left from `now`.
pub(crate) fn parse_retry_after(
    value: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let left = when.with_timezone(&chrono::Utc) - now;
    Some(left.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_are_refused_and_public_ones_allowed() {
        let private = [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fc00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ];
        for ip in private {
            assert!(is_private(ip.parse().unwrap()), "{ip} should be refused");
        }
        let public = [
            "93.184.216.34",
            "8.8.8.8",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ];
        for ip in public {
            assert!(!is_private(ip.parse().unwrap()), "{ip} should be allowed");
        }
    }

    #[test]
    fn ip_literal_urls_are_checked_before_any_request() {
        for url in [
            "http://127.0.0.1/feed",
            "http://[::1]:8080/",
            "http://169.254.169.254/latest/meta-data/",
            "https://10.0.0.5/x",
        ] {
            let err = check_url(&Url::parse(url).unwrap(), false).unwrap_err();
            assert!(err.to_string().contains("allow_private = true"), "{err}");
            assert!(check_url(&Url::parse(url).unwrap(), true).is_ok());
        }
        assert!(check_url(&Url::parse("https://example.com/feed").unwrap(), false).is_ok());
        let err = check_url(&Url::parse("file:///etc/passwd").unwrap(), true).unwrap_err();
        assert!(err.to_string().contains("only http and https"), "{err}");
    }

    #[test]
    fn urls_are_redacted_of_credentials() {
        let shown = redact_url("https://user:s3cret@example.com/feed.xml?token=abc#frag");
        assert_eq!(shown, "https://example.com/feed.xml?…");
        assert!(!shown.contains("s3cret") && !shown.contains("abc"));
        assert_eq!(redact_url("not a url"), "<invalid url>");
    }

    #[test]
    fn a_429_waits_for_the_rate_limit_reset_in_either_form() {
        let now = chrono::DateTime::parse_from_rfc3339("2025-01-13T09:09:25Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let headers = |pairs: &[(&'static str, String)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            h
        };
        // Bluesky: a Unix time, 90 s from now.
        let bsky = headers(&[("ratelimit-reset", (now.timestamp() + 90).to_string())]);
        assert_eq!(retry_after(429, &bsky, now), Some(Duration::from_secs(90)));
        // The IETF draft: seconds left.
        let draft = headers(&[("ratelimit-reset", "30".into())]);
        assert_eq!(retry_after(429, &draft, now), Some(Duration::from_secs(30)));
        // A reset already past waits nothing; Retry-After wins over both.
        let past = headers(&[("ratelimit-reset", (now.timestamp() - 5).to_string())]);
        assert_eq!(retry_after(429, &past, now), Some(Duration::ZERO));
        let both = headers(&[
            ("ratelimit-reset", (now.timestamp() + 90).to_string()),
            ("retry-after", "7".into()),
        ]);
        assert_eq!(retry_after(429, &both, now), Some(Duration::from_secs(7)));
        // Only a 429 is a rate limit; a 400 carrying the same headers is not a wait.
        assert_eq!(retry_after(400, &bsky, now), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
