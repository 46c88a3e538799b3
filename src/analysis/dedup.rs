//! Dedup keys: the names under which a mention counts as already seen. The same item polled
//! twice shares its item key; the same story in two feeds shares its canonical-URL key.

use crate::model::Mention;

/// Query parameters that only track clicks; dropped so the same page has one key.
const TRACKING_PARAMS: &[&str] = &[
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "utm_id",
    "fbclid",
    "gclid",
    "mc_cid",
    "mc_eid",
    "ref",
    "ref_src",
];

pub fn keys(m: &Mention) -> Vec<String> {
    let mut keys = vec![format!("item:{}", m.key())];
    if let Some(u) = m.url.as_deref().and_then(canonical_url) {
        keys.push(format!("url:{u}"));
    }
    keys
}

/// Keys under which people can mute a mention's author or site from chat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MuteKeys {
    pub author: Option<String>,
    pub site: Option<String>,
}

pub fn mute_keys(m: &Mention) -> MuteKeys {
    MuteKeys {
        author: m
            .author
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| format!("author:{}:{}", m.source_kind, a.to_lowercase())),
        site: m
            .url
            .as_deref()
            .and_then(canonical_url)
            .and_then(|u| u.split(['/', '?']).next().map(str::to_string))
            .map(|host| format!("site:{host}")),
    }
}

/// Keys that make a later mention a repeat of an alert: the same author on the same kind of
/// source, or the same story title.
pub fn thread_keys(m: &Mention) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(a) = mute_keys(m).author {
        keys.push(a);
    }
    if let Some(t) = m.title.as_deref() {
        let norm: String = t
            .to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if norm.len() >= 16 {
            keys.push(format!("story:{norm}"));
        }
    }
    keys
}

/// Lower-cased scheme and host, no `www.`, no fragment, no tracking parameters, no trailing
/// slash. Returns `None` for anything that is not an http(s) URL.
pub fn canonical_url(url: &str) -> Option<String> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let rest = rest.split('#').next().unwrap_or_default();
    let (host_port, path_query) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = host_port
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host).to_string();
    if host.is_empty() {
        return None;
    }
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_query, None),
    };
    let path = path.trim_end_matches('/');
    let params: Vec<&str> = query
        .unwrap_or_default()
        .split('&')
        .filter(|kv| {
            let k = kv.split('=').next().unwrap_or_default();
            !k.is_empty() && !TRACKING_PARAMS.contains(&k.to_ascii_lowercase().as_str())
        })
        .collect();
    let mut out = format!("{host}{path}");
    if !params.is_empty() {
        out.push('?');
        out.push_str(&params.join("&"));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_page_same_key() {
        let a = canonical_url("https://www.Example.com/post/1/?utm_source=x&id=3#comments");
        let b = canonical_url("http://example.com/post/1?id=3&fbclid=abc");
        assert_eq!(a.as_deref(), Some("example.com/post/1?id=3"));
        assert_eq!(a, b);
    }

    #[test]
    fn non_http_has_no_key() {
        assert_eq!(canonical_url("mailto:x@example.com"), None);
        assert_eq!(canonical_url("https://"), None);
    }
}
