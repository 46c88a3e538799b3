//! Dedup keys: the names under which a mention counts as already seen. The same item polled
//! twice shares its item key; the same story in two feeds shares its canonical-URL key.
//! Also what counts as a real author (for repeat threads and mutes) and the unwrapping of
//! redirect links (Google Alerts, Facebook, …) so a link names the page it leads to.

use crate::model::Mention;
use url::Url;

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

/// The keys under which a mention that matched a rule is remembered: its item (a source
/// serving it again) and its canonical URL (the same page through another source).
pub(crate) fn keys(m: &Mention) -> Vec<String> {
    let mut keys = unmatched_keys(m);
    if let Some(u) = m.url.as_deref().and_then(canonical_url) {
        keys.push(format!("url:{u}"));
    }
    keys
}

/// The keys of a mention that matched no rule: its item only. The URL key is there so one
/// page alerts once; a page that alerted nothing has nothing to repeat, and if another
/// source's copy of it matches a rule, that copy is news the team has not seen. Every key
/// held costs memory for as long as the store lives (README, "Storage").
pub(crate) fn unmatched_keys(m: &Mention) -> Vec<String> {
    vec![format!("item:{}", m.key())]
}

/// Keys under which people can mute a mention's author or site from chat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MuteKeys {
    /// The key a new author mute stores, and the author's thread key.
    pub(crate) author: Option<String>,
    /// Other keys the same author may already be muted under: a Bluesky author's handle
    /// (mutes stored before mutes went by DID).
    pub(crate) author_aliases: Vec<String>,
    pub(crate) site: Option<String>,
}

impl MuteKeys {
    /// Every key a stored mute may match.
    pub(crate) fn all(&self) -> impl Iterator<Item = &String> {
        self.author
            .iter()
            .chain(&self.author_aliases)
            .chain(&self.site)
    }
}

/// Placeholders and empty names are no author: keys on them would thread or mute every
/// mention that lacks one (a whole feed, every deleted account).
/// A Bluesky author is keyed by the DID in the post's `at://` URI, not by what the alert
/// shows: the shown name is a handle only when the profile lookup worked, and a handle can
/// change, so a mute or a thread by handle would come and go with the AppView.
pub(crate) fn mute_keys(m: &Mention) -> MuteKeys {
    let shown = real_author(m).map(|a| format!("author:{}:{}", m.source_kind, a.to_lowercase()));
    let (author, author_aliases) = match bluesky_did(m) {
        Some(did) => {
            let key = format!("author:{}:{}", m.source_kind, did.to_lowercase());
            let aliases = shown.filter(|s| *s != key).into_iter().collect();
            (Some(key), aliases)
        }
        None => (shown, Vec::new()),
    };
    MuteKeys {
        author,
        author_aliases,
        // An undecodable Google News link names Google, not the publisher: muting that
        // "site" would mute every such article, so it has none (the publisher is its author).
        site: m
            .url
            .as_deref()
            .filter(|u| !is_opaque_google_news_link(u))
            .and_then(http_url)
            .and_then(|u| site(&u))
            .map(|host| format!("site:{host}")),
    }
}

/// Keys that make a later mention a repeat of an alert: the same author on the same kind of
/// source, or the same story title. A rated review's title is its author's own summary
/// ("Stopped working after update"), not a shared headline: two reviewers who chose the same
/// words are two complaints, so reviews never thread by title.
pub(crate) fn thread_keys(m: &Mention) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(a) = mute_keys(m).author {
        keys.push(a);
    }
    if let Some(t) = m.title.as_deref().filter(|_| m.rating.is_none()) {
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

/// A Bluesky post's author DID, from its `at://{did}/app.bsky.feed.post/{rkey}` id.
fn bluesky_did(m: &Mention) -> Option<&str> {
    if m.source_kind != "bluesky" {
        return None;
    }
    m.item_id
        .strip_prefix("at://")
        .and_then(|rest| rest.split('/').next())
        .filter(|d| d.starts_with("did:"))
}

/// The mention's author, unless it is empty or a placeholder.
pub(crate) fn real_author(m: &Mention) -> Option<&str> {
    m.author
        .as_deref()
        .map(str::trim)
        .filter(|a| !is_placeholder_author(a))
}

/// Names that stand for "no author": feed-rs's own fill-ins (`author` for an RSS 2.0
/// `<author>` it cannot split, `unknown` for an empty Atom name), what platforms show for gone
/// accounts, and no-reply e-mail addresses (Blogger writes `noreply@blogger.com` when the
/// author hides theirs). Generic but real account names such as `admin` or `editor` are kept:
/// they name one account on one site.
pub(crate) fn is_placeholder_author(name: &str) -> bool {
    let name = name.trim().to_lowercase();
    if let Some((local, _domain)) = name.split_once('@') {
        return matches!(
            local,
            "noreply" | "no-reply" | "no_reply" | "donotreply" | "do-not-reply" | "nobody"
        );
    }
    matches!(
        name.as_str(),
        "" | "-"
            | "author"
            | "unknown"
            | "unknown author"
            | "anonymous"
            | "anon"
            | "n/a"
            | "none"
            | "null"
            | "undefined"
            | "nobody"
            | "[deleted]"
            | "[removed]"
    )
}

/// Redirect wrappers whose target sits in a query parameter: (host without `www.`, path,
/// parameter names in the order tried). Google's `/url` exists on every country domain.
const REDIRECTS: &[(&str, &str, &[&str])] = &[
    ("google.*", "/url", &["url", "q"]),
    ("l.facebook.com", "/l.php", &["u"]),
    ("lm.facebook.com", "/l.php", &["u"]),
    ("m.facebook.com", "/l.php", &["u"]),
    ("out.reddit.com", "*", &["url"]),
    ("bing.com", "/news/apiclick.aspx", &["url"]),
    ("youtube.com", "/redirect", &["q"]),
    ("linkedin.com", "/redir/redirect", &["url"]),
];

/// The page a known redirect link leads to (Google Alerts' `google.com/url?…&url=<target>`,
/// `l.facebook.com/l.php?u=`, `out.reddit.com/…?url=`, Bing News, YouTube and LinkedIn
/// redirects), else the link itself. Unwraps only when the embedded target is an absolute
/// http(s) URL, and at most a few levels deep. Used before display and before dedup, so the
/// same article from two alerts is one alert showing the article's own link.
pub(crate) fn unwrap_redirect(url: &str) -> String {
    let mut current = url.trim().to_string();
    for _ in 0..3 {
        match redirect_target(&current) {
            Some(target) => current = target,
            None => break,
        }
    }
    current
}

fn redirect_target(url: &str) -> Option<String> {
    let parsed = Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    let host = parsed.host_str()?;
    let host = host.strip_prefix("www.").unwrap_or(host);
    if host == GOOGLE_NEWS_HOST {
        return google_news_article_id(&parsed).and_then(google_news_target);
    }
    let (_, _, params) = REDIRECTS.iter().find(|(h, path, _)| {
        let host_ok = match h.strip_suffix('*') {
            Some(prefix) => host.strip_prefix(prefix).is_some_and(is_google_tld),
            None => host == *h,
        };
        host_ok && (*path == "*" || parsed.path() == *path)
    })?;
    params.iter().find_map(|name| {
        parsed
            .query_pairs()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .find(|v| is_absolute_http(v))
    })
}

const GOOGLE_NEWS_HOST: &str = "news.google.com";

/// The article id of a Google News article link: the last segment of
/// `news.google.com/rss/articles/<id>?oc=5` (the form its RSS feeds use), `/articles/<id>`
/// or `/read/<id>`.
fn google_news_article_id(u: &Url) -> Option<&str> {
    let mut segments = u.path_segments()?;
    let id = match segments.next()? {
        "rss" => {
            if segments.next()? != "articles" {
                return None;
            }
            segments.next()?
        }
        "articles" | "read" => segments.next()?,
        _ => return None,
    };
    (segments.next().is_none() && !id.is_empty()).then_some(id)
}

/// The publisher URL inside a Google News article id, decoded offline, when it has one.
///
/// The id is the base64url encoding of a small protobuf message. In the older ids (decoded
/// bytes `08 13 22 <len> https://…`, base64 `CBMi…`) field 4 is the article's URL in plain
/// text (and field 26, when present, its AMP URL), so it is read here without asking Google.
/// The newer ids (since mid-2024) carry an opaque token in field 4 instead (it starts with
/// `AU_yqL`): only a call to Google's internal `batchexecute` endpoint can resolve those, and
/// mentiondesk does not make that call, so they return `None` and the Google link stays.
pub(crate) fn google_news_target(id: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(id.trim_end_matches('='))
        .ok()?;
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        let (tag, after) = read_varint(rest)?;
        rest = after;
        match tag & 7 {
            0 => rest = read_varint(rest)?.1,
            1 => rest = rest.get(8..)?,
            2 => {
                let (len, after) = read_varint(rest)?;
                let len = usize::try_from(len).ok()?;
                let field = after.get(..len)?;
                rest = &after[len..];
                if tag >> 3 == 4 {
                    let text = std::str::from_utf8(field).ok()?;
                    return is_absolute_http(text).then(|| text.to_string());
                }
            }
            5 => rest = rest.get(4..)?,
            _ => return None,
        }
    }
    None
}

/// A protobuf varint and what follows it.
fn read_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

/// Whether a link is a Google News article link that could not be decoded (a newer, opaque
/// id): its site is Google's, not the publisher's.
pub(crate) fn is_opaque_google_news_link(url: &str) -> bool {
    Url::parse(url.trim()).is_ok_and(|u| {
        u.host_str() == Some(GOOGLE_NEWS_HOST)
            && google_news_article_id(&u).is_some_and(|id| google_news_target(id).is_none())
    })
}

/// `com`, `de`, `co.uk`, `com.au`: a country or generic suffix after `google.`.
fn is_google_tld(rest: &str) -> bool {
    let labels: Vec<&str> = rest.split('.').collect();
    (1..=2).contains(&labels.len())
        && labels
            .iter()
            .all(|l| (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_lowercase()))
}

fn is_absolute_http(s: &str) -> bool {
    Url::parse(s).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
    })
}

/// Lower-cased host without `www.`, path without trailing slash, query without tracking
/// parameters, and a fragment only when it names an item (`names_an_item`); no scheme, user
/// info or default port. Redirect wrappers are unwrapped
/// first. Returns `None` for anything that is not an http(s) URL with a host.
///
/// The key has the same bytes as the string-splitting keys stored before it was built on
/// `url::Url` for every URL in the table test (`url_keys_match_the_stored_legacy_keys`); it
/// differs only where `url::Url` normalises (an explicit default port, spaces, quotes or
/// non-ASCII characters in the path or query, `.`/`..` segments, backslashes, IDN hosts), and
/// there the new key is the one the normalised and the raw spelling now share. The query keeps
/// its own spelling and order (only tracking parameters go): re-serialising it would change
/// every stored key with an encoded character in it.
pub(crate) fn canonical_url(url: &str) -> Option<String> {
    let parsed = http_url(url)?;
    let mut out = site(&parsed)?;
    out.push_str(parsed.path().trim_end_matches('/'));
    let params: Vec<&str> = parsed
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|kv| {
            let k = kv.split('=').next().unwrap_or_default();
            !k.is_empty() && !TRACKING_PARAMS.contains(&k.to_ascii_lowercase().as_str())
        })
        .collect();
    if !params.is_empty() {
        out.push('?');
        out.push_str(&params.join("&"));
    }
    if let Some(id) = parsed.fragment().filter(|f| names_an_item(f)) {
        out.push('#');
        out.push_str(id);
    }
    Some(out)
}

/// Whether a fragment points at one item on a page of many (`#issuecomment-2100000000`,
/// `#post_12`, Stack Overflow's `#78000001`): two comments on one thread are two mentions.
/// Navigation anchors (`#comments`, `#top`), routes (`#/a?b=1`) and text fragments
/// (`#:~:text=…`) have no digit or a separator, and still share the page's key.
fn names_an_item(fragment: &str) -> bool {
    fragment.bytes().any(|b| b.is_ascii_digit())
        && fragment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The http(s) URL a link names, known redirect wrappers unwrapped.
fn http_url(url: &str) -> Option<Url> {
    let parsed = Url::parse(&unwrap_redirect(url)).ok()?;
    matches!(parsed.scheme(), "http" | "https").then_some(parsed)
}

/// `host[:port]` of a URL: the host lower-cased (by `url::Url`) without `www.`, the port only
/// when it is not the scheme's default. `None` when no host is left (`https://www./`).
fn site(u: &Url) -> Option<String> {
    let host = u.host_str()?;
    let host = host.strip_prefix("www.").unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some(match u.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mention(author: Option<&str>, url: &str) -> Mention {
        Mention {
            item_id: "1".into(),
            source: "s".into(),
            source_kind: "rss".into(),
            url: Some(url.into()),
            title: Some("A title long enough for a story key".into()),
            text: "t".into(),
            author: author.map(str::to_string),
            author_reach: None,
            published: None,
            lang: None,
            rating: None,
        }
    }

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
        assert_eq!(canonical_url("not a url"), None);
    }

    /// The string-splitting canonicalisation keys were stored with before `url::Url`.
    fn legacy_canonical_url(url: &str) -> Option<String> {
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

    /// Keys of already-stored mentions stay valid: on the URLs feeds and APIs really hand out
    /// (messy ones included: tracking tails, empty and repeated `&`, encoded characters, ports,
    /// user info, fragments that look like queries), the `url::Url` canonicalisation gives
    /// exactly the old key.
    #[test]
    fn url_keys_match_the_stored_legacy_keys() {
        let urls = [
            "https://www.example.com/",
            "https://example.com",
            "http://Example.COM/Path/To/Page.html",
            "HTTPS://WWW.EXAMPLE.COM/A/B/",
            "https://news.example/tech/2024/05/07/acme-recalls-routers/",
            "https://blog.example/?p=123",
            "https://example.com?x=1",
            "https://www.reddit.com/r/acme/comments/1abcde/my_router_died/",
            "https://www.reddit.com/r/acme/comments/1abcde/my_router_died/?utm_source=share&utm_medium=web3x&utm_name=web3xcss&utm_term=1&utm_content=share_button",
            "https://old.reddit.com/r/acme/comments/1abcde/my_router_died/.compact",
            "https://news.ycombinator.com/item?id=40000000",
            "https://mastodon.social/@dana/112345678901234567",
            "https://mastodon.social/users/dana/statuses/112345678901234567",
            "https://bsky.app/profile/dana.bsky.social/post/3l3qo2vutsw2b",
            "https://bsky.app/profile/did:plc:abcdefghijklmnop/post/3l3qo2vutsw2b",
            "https://www.youtube.com/watch?v=V5lDq0xqD2E&t=42s",
            "https://www.youtube.com/watch?v=V5lDq0xqD2E&feature=youtu.be",
            "https://youtu.be/V5lDq0xqD2E?si=AbCdEfGh12345678",
            "https://example.com:8080/a?b=c&utm_medium=social&ref=home#top",
            "https://example.com:8443/a/",
            "https://example.com:80/a",
            "http://example.com:443/a",
            "https://user:pw@example.com/private",
            "http://user@example.com/a",
            "https://user:pa:ss@www.example.com:8080/a",
            "https://@example.com/a",
            "https://example.com/search?q=acme%20router&page=2",
            "https://www.example.com/search?q=acme%20router&page=2&fbclid=IwAR0abc",
            "https://example.com/a//b/",
            "https://example.com//",
            "https://example.com///a///",
            "https://example.com/caf%C3%A9",
            "https://example.com/caf%c3%a9",
            "https://example.com/%7Euser/",
            "https://example.com/~user/",
            "https://example.com/a%2Fb",
            "https://example.com/a%20b",
            "https://example.com/a+b",
            "https://example.com/%zz",
            "https://example.com/a?b=%zz",
            "https://example.com/a|b?c|d",
            "https://example.com/a^b?c^d",
            "https://example.com/a[b]?c[d]=1",
            "https://example.com/a;jsessionid=ABC?x=1",
            "https://example.com/a?",
            "https://example.com/a?#frag",
            "https://example.com/a#frag?x=1",
            "https://example.com/a?x=1#/route?y=2",
            "https://example.com/index.html?",
            "https://example.com/?utm_source=rss",
            "https://example.com/a?UTM_SOURCE=x&b=1",
            "https://example.com/a?b=1&&c=2",
            "https://example.com/a?=x&b=1",
            "https://example.com/a?b&c",
            "https://example.com/a?b=1=2",
            "https://example.com/a?q=acme+router&x=%2F",
            "https://example.com/a?x=1&utm_source=a&y=2#c",
            "https://www.example.com/article.php?id=5&ref=rss&gclid=Cj0KCQ",
            "https://www.example.com/a?mc_cid=1&mc_eid=2",
            "https://www.example.com/%E2%80%9Cquoted%E2%80%9D",
            "https://xn--bcher-kva.example/katalog",
            "https://EXAMPLE.com./a",
            "http://[::1]:8080/a",
            "http://127.0.0.1:3000/x",
            " https://example.com/trim ",
            "https://www.www.example.com/a",
            "https://sub.WWW.example.com/a",
            "https://www.example.co.uk/a",
            "https://en.wikipedia.org/wiki/Acme_Corporation",
            "https://en.wikipedia.org/wiki/Caf%C3%A9_(film)",
            "https://www.amazon.com/dp/B08N5WRWNW/ref=sr_1_1?keywords=acme&qid=1600000000&sr=8-1",
            "https://www.amazon.de/-/en/Acme-Router/dp/B0ABCDEF12?ref_=ast_sto_dp&th=1",
            "https://twitter.com/acme/status/1790000000000000000?s=20&t=abcDEF",
            "https://x.com/acme/status/1790000000000000000?ref_src=twsrc%5Etfw",
            "https://www.linkedin.com/posts/acme_router-launch-activity-7190000000000000000-AbCd?utm_source=share&utm_medium=member_desktop",
            "https://medium.com/@dana/why-acme-routers-fail-3f2c1a9b8e7d?source=rss----abc---4",
            "https://www.theverge.com/2024/5/7/24151234/acme-router-recall?utm_campaign=theverge&utm_content=chorus&utm_medium=social&utm_source=twitter",
            "https://www.nytimes.com/2024/05/07/technology/acme-recall.html?smid=nytcore-ios-share&referringSource=articleShare",
            "https://news.google.com/rss/articles/CBMiW2h0dHBzOi8vd3d3LmV4YW1wbGUuY29tL2FjbWU?oc=5",
            "https://apps.apple.com/us/app/acme/id1234567890?see-all=reviews",
            "https://play.google.com/store/apps/details?id=com.acme.app&hl=en_US&gl=US",
            "https://discourse.example.org/t/acme-router-keeps-rebooting/12345/7",
            "https://lemmy.world/post/12345678",
            "https://www.facebook.com/acme/posts/pfbid0abc?__cft__[0]=AZX&__tn__=%2CO%2CP-R",
            // Not http(s), or no host: no key either way.
            "ftp://example.com/a",
            "mailto:x@example.com",
            "javascript:alert(1)",
            "https://",
            "not a url",
        ];
        for url in urls {
            assert_eq!(canonical_url(url), legacy_canonical_url(url), "{url}");
        }
    }

    /// Comments on one page are distinct mentions: a fragment naming an item stays in the key
    /// (a stored mention with such a URL can come back once after the upgrade that added it).
    #[test]
    fn item_fragments_keep_comments_apart_and_anchors_do_not() {
        let cases = [
            (
                "https://github.com/acme/router/issues/123#issuecomment-2100000000",
                "github.com/acme/router/issues/123#issuecomment-2100000000",
            ),
            (
                "https://stackoverflow.com/questions/78000000/acme-sdk/78000001#78000001",
                "stackoverflow.com/questions/78000000/acme-sdk/78000001#78000001",
            ),
            (
                "https://forum.example/t/acme-router/12345#post_12",
                "forum.example/t/acme-router/12345#post_12",
            ),
            (
                "https://blog.example/acme/?utm_source=x#comment-42",
                "blog.example/acme#comment-42",
            ),
            ("https://blog.example/acme/#comments", "blog.example/acme"),
            (
                "https://blog.example/acme#:~:text=acme%20broke",
                "blog.example/acme",
            ),
            ("https://app.example/#/thread/1?x=2", "app.example"),
            ("https://blog.example/acme#", "blog.example/acme"),
        ];
        for (url, key) in cases {
            assert_eq!(canonical_url(url).as_deref(), Some(key), "{url}");
        }
        assert_ne!(
            canonical_url("https://github.com/acme/router/issues/123#issuecomment-1"),
            canonical_url("https://github.com/acme/router/issues/123#issuecomment-2"),
        );
    }

    /// Where `url::Url` normalises, the key differs from the legacy one (a stored mention with
    /// such a URL can come back once after the upgrade; README, "Dedup keys"). Each new key is
    /// the one both spellings now share, so these are also dedup improvements.
    #[test]
    fn url_keys_differ_from_legacy_only_where_url_normalises() {
        let cases = [
            // An explicit default port is no port.
            ("https://example.com:443/a", "example.com/a", "https://example.com/a"),
            ("http://EXAMPLE.com:80", "example.com", "http://example.com/"),
            ("https://example.com:/a", "example.com/a", "https://example.com/a"),
            ("https://example.com:0443/a", "example.com/a", "https://example.com/a"),
            ("https://example.com:00080/a", "example.com:80/a", "https://example.com:80/a"),
            // Spaces, quotes and non-ASCII characters are percent-encoded.
            ("https://example.com/a b/c", "example.com/a%20b/c", "https://example.com/a%20b/c"),
            ("https://example.com/a?q=acme router", "example.com/a?q=acme%20router", "https://example.com/a?q=acme%20router"),
            ("https://example.com/café", "example.com/caf%C3%A9", "https://example.com/caf%C3%A9"),
            ("https://de.wikipedia.org/wiki/Müller", "de.wikipedia.org/wiki/M%C3%BCller", "https://de.wikipedia.org/wiki/M%C3%BCller"),
            ("https://www.example.com/“quoted”", "example.com/%E2%80%9Cquoted%E2%80%9D", "https://www.example.com/%E2%80%9Cquoted%E2%80%9D"),
            ("https://www.example.com/emoji/😀", "example.com/emoji/%F0%9F%98%80", "https://www.example.com/emoji/%F0%9F%98%80"),
            ("https://example.com/a\"b?c\"d", "example.com/a%22b?c%22d", "https://example.com/a%22b?c%22d"),
            ("https://example.com/a<b>?c<d>", "example.com/a%3Cb%3E?c%3Cd%3E", "https://example.com/a%3Cb%3E?c%3Cd%3E"),
            ("https://example.com/a'b?c'd", "example.com/a'b?c%27d", "https://example.com/a'b?c%27d"),
            ("https://example.com/a{b}?c{d}", "example.com/a%7Bb%7D?c{d}", "https://example.com/a%7Bb%7D?c{d}"),
            ("https://example.com/a`b?c`d", "example.com/a%60b?c`d", "https://example.com/a%60b?c`d"),
            // Dot segments, backslashes, tabs.
            ("https://example.com/a/../b", "example.com/b", "https://example.com/b"),
            ("https://example.com/a/./b", "example.com/a/b", "https://example.com/a/b"),
            ("https://example.com/./", "example.com", "https://example.com/"),
            ("https://example.com/a\\b", "example.com/a/b", "https://example.com/a/b"),
            ("https://example.com/tab\there", "example.com/tabhere", "https://example.com/tabhere"),
            // IDN and numeric hosts take their canonical spelling.
            ("https://bücher.example/katalog", "xn--bcher-kva.example/katalog", "https://xn--bcher-kva.example/katalog"),
            ("http://0x7f.0.0.1/x", "127.0.0.1/x", "http://127.0.0.1/x"),
            ("https://example.com.:443/a", "example.com./a", "https://example.com./a"),
            // A host-less `http:///a` reads as host `a`, as browsers read it.
            ("http:///a", "a", "http://a/"),
            // Redirect wrappers (issue 11) key as their target.
            (
                "https://www.google.com/url?rct=j&sa=t&url=https://www.news.example/a/&ct=ga&cd=CAIy&usg=AOvVaw3",
                "news.example/a",
                "https://news.example/a",
            ),
        ];
        for (url, key, same_as) in cases {
            assert_eq!(canonical_url(url).as_deref(), Some(key), "{url}");
            assert_ne!(legacy_canonical_url(url).as_deref(), Some(key), "{url}");
            assert_eq!(canonical_url(same_as).as_deref(), Some(key), "{same_as}");
        }
        // Hosts `url::Url` refuses, and a host that is only `www.`, have no key.
        for url in [
            "http://a b.com/",
            "https://exa mple.com/x",
            "https://www./a",
        ] {
            assert_eq!(canonical_url(url), None, "{url}");
        }
    }

    #[test]
    fn site_keys_are_host_and_non_default_port() {
        let cases = [
            ("https://www.News.example/a?b=1", Some("site:news.example")),
            (
                "https://news.example:8443/a",
                Some("site:news.example:8443"),
            ),
            ("https://news.example:443/a", Some("site:news.example")),
            ("http://[::1]:8080/a", Some("site:[::1]:8080")),
            (
                "https://bücher.example/k",
                Some("site:xn--bcher-kva.example"),
            ),
            ("https://news.example?x=1", Some("site:news.example")),
            ("https://www./a", None),
            ("mailto:x@news.example", None),
        ];
        for (url, want) in cases {
            assert_eq!(
                mute_keys(&mention(None, url)).site.as_deref(),
                want,
                "{url}"
            );
        }
    }

    #[test]
    fn known_redirect_wrappers_are_unwrapped() {
        let cases = [
            // Google Alerts.
            (
                "https://www.google.com/url?rct=j&sa=t&url=https://www.news.example/a/&ct=ga&cd=CAIy&usg=AOvVaw3",
                "https://www.news.example/a/",
            ),
            (
                "https://www.google.com/url?rct=j&sa=t&url=https://blog.example/p%3Fid%3D5%26x%3Dy&ct=ga",
                "https://blog.example/p?id=5&x=y",
            ),
            // Search result links, on country domains too.
            (
                "https://www.google.co.uk/url?q=https://shop.example/item&sa=U&ved=0ahU",
                "https://shop.example/item",
            ),
            (
                "https://google.de/url?sa=t&url=http%3A%2F%2Fnews.example%2Fx",
                "http://news.example/x",
            ),
            (
                "https://l.facebook.com/l.php?u=https%3A%2F%2Fnews.example%2Fstory%3Ffbclid%3Dabc&h=AT0",
                "https://news.example/story?fbclid=abc",
            ),
            (
                "https://out.reddit.com/t3_1abcde?url=https%3A%2F%2Fnews.example%2Fr&token=AQAA&app_name=web",
                "https://news.example/r",
            ),
            (
                "http://www.bing.com/news/apiclick.aspx?ref=FexRss&aid=&tid=66&url=https%3a%2f%2fnews.example%2fbing&c=1&mkt=en-us",
                "https://news.example/bing",
            ),
            (
                "https://www.youtube.com/redirect?event=video_description&q=https%3A%2F%2Fshop.example%2Fgear&v=V5lDq0xqD2E",
                "https://shop.example/gear",
            ),
            // A wrapper around a wrapper.
            (
                "https://l.facebook.com/l.php?u=https%3A%2F%2Fwww.google.com%2Furl%3Furl%3Dhttps%3A%2F%2Fnews.example%2Fdeep",
                "https://news.example/deep",
            ),
        ];
        for (wrapped, target) in cases {
            assert_eq!(unwrap_redirect(wrapped), target, "{wrapped}");
        }
    }

    #[test]
    fn google_news_article_links_with_a_url_inside_are_unwrapped() {
        // Ids made the way Google's older ones are (base64url of `08 13 22 <len> <url>`, an
        // AMP URL in field 26 after it), as in links such as
        // news.google.com/rss/articles/CBMiLmh0dHBzOi8vd3d3LmJiYy5jb20v…?oc=5.
        let cases = [
            (
                "https://news.google.com/rss/articles/CBMiKGh0dHBzOi8vbmV3cy5leGFtcGxlLzIwMjYvMTEvYWNtZS1yZWNhbGw?oc=5",
                "https://news.example/2026/11/acme-recall",
            ),
            (
                "https://news.google.com/rss/articles/CBMiaWh0dHBzOi8vd3d3LmV4YW1wbGUuY28udWsvYnVzaW5lc3MvYWNtZS1vdXRhZ2UtbGVhdmVzLWN1c3RvbWVycy13aXRob3V0LXNlcnZpY2UtZm9yLWEtZGF5LTIwMjYtMTEtMzAuaHRtbNIBbWh0dHBzOi8vd3d3LmV4YW1wbGUuY28udWsvYnVzaW5lc3MvYWNtZS1vdXRhZ2UtbGVhdmVzLWN1c3RvbWVycy13aXRob3V0LXNlcnZpY2UtZm9yLWEtZGF5LTIwMjYtMTEtMzAuYW1wLmh0bWw?oc=5",
                "https://www.example.co.uk/business/acme-outage-leaves-customers-without-service-for-a-day-2026-11-30.html",
            ),
            (
                "https://news.google.com/articles/CBMiKGh0dHBzOi8vbmV3cy5leGFtcGxlLzIwMjYvMTEvYWNtZS1yZWNhbGw?hl=en-US&gl=US&ceid=US%3Aen",
                "https://news.example/2026/11/acme-recall",
            ),
        ];
        for (wrapped, target) in cases {
            assert_eq!(unwrap_redirect(wrapped), target, "{wrapped}");
            assert!(!is_opaque_google_news_link(wrapped));
        }
        let a = mention(None, cases[0].0);
        let b = mention(
            None,
            "https://news.example/2026/11/acme-recall?utm_source=x",
        );
        assert_eq!(keys(&a)[1], keys(&b)[1], "one article, one key");
        assert_eq!(mute_keys(&a).site.as_deref(), Some("site:news.example"));
    }

    #[test]
    fn reviews_do_not_thread_by_their_title() {
        let mut review = mention(Some("dana"), "https://apps.apple.com/us/app/id1#review-1");
        review.title = Some("Stopped working after the update".into());
        assert!(thread_keys(&review).iter().any(|k| k.starts_with("story:")));
        review.rating = Some(1);
        assert_eq!(thread_keys(&review), ["author:rss:dana"]);
    }

    #[test]
    fn opaque_google_news_ids_keep_the_google_link_and_have_no_site() {
        // A newer id: field 4 is the token "AU_yqL…", resolvable only by asking Google.
        let opaque = "https://news.google.com/rss/articles/CBMiVkFVX3lxTE4zaGU2bTY2ZGkzdTRkSkJ0cFpsTGlDUjkxU2FBRURaTWU0c3QzVWZ1MHZZNkZ5Vzk1ZVBnTDFHY2R6ZmdCUkpUTUJsS1pqQTlCRzlzbHV3?oc=5";
        assert_eq!(unwrap_redirect(opaque), opaque);
        assert!(is_opaque_google_news_link(opaque));
        let m = mention(Some("The Example Times"), opaque);
        assert_eq!(
            mute_keys(&m).site,
            None,
            "muting news.google.com would mute all of it"
        );
        assert!(keys(&m)[1].starts_with("url:news.google.com/rss/articles/CBMiVkFV"));
        for other in [
            "https://news.google.com/rss/articles/not-base64!?oc=5",
            "https://news.google.com/rss/articles/",
            "https://news.google.com/topics/CAAqBwgKMLGv?hl=en-US",
            "https://news.google.com/rss/search?q=acme",
        ] {
            assert_eq!(unwrap_redirect(other), other, "{other}");
        }
        assert!(!is_opaque_google_news_link(
            "https://news.google.com/rss/search?q=acme"
        ));
    }

    #[test]
    fn links_that_are_not_known_wrappers_stay() {
        for url in [
            // The embedded target must be an absolute http(s) URL.
            "https://www.google.com/url?q=/relative/path",
            "https://www.google.com/url?url=javascript:alert(1)",
            "https://www.google.com/url?url=ftp://files.example/x",
            // Not the redirect path, or not a redirect host.
            "https://www.google.com/search?q=https://news.example/",
            "https://www.google.evil.example/url?url=https://news.example/",
            "https://notgoogle.com/url?url=https://news.example/",
            "https://news.example/article?url=https://other.example/",
            "https://www.youtube.com/watch?v=V5lDq0xqD2E",
            "not a url",
        ] {
            assert_eq!(unwrap_redirect(url), url.trim(), "{url}");
        }
    }

    /// Two Google Alerts for one article have different `cd`/`usg` parameters; their keys
    /// are the article's, and muting the site mutes the article's site, not google.com.
    #[test]
    fn redirects_dedup_and_mute_as_their_target() {
        let a = "https://www.google.com/url?rct=j&sa=t&url=https://www.news.example/a/&ct=ga&cd=ONE&usg=X1";
        let b = "https://www.google.com/url?rct=j&sa=t&url=https://www.news.example/a/&ct=ga&cd=TWO&usg=X2";
        assert_eq!(canonical_url(a).as_deref(), Some("news.example/a"));
        assert_eq!(canonical_url(a), canonical_url(b));
        assert_eq!(
            mute_keys(&mention(None, a)).site.as_deref(),
            Some("site:news.example")
        );
    }

    #[test]
    fn placeholder_authors_are_no_author() {
        for name in [
            "",
            "  ",
            "author",
            "Author",
            "unknown",
            "UNKNOWN",
            "anonymous",
            "[deleted]",
            "noreply@blogger.com",
            "no-reply@example.com",
        ] {
            assert!(is_placeholder_author(name), "{name:?}");
            let m = mention(Some(name), "https://news.example/a");
            assert_eq!(mute_keys(&m).author, None, "{name:?}");
            assert!(
                thread_keys(&m).iter().all(|k| !k.starts_with("author:")),
                "{name:?} must not thread repeats"
            );
            assert_eq!(real_author(&m), None);
        }
        for name in ["Jane Doe", "admin", "jdoe@news.example", "authority"] {
            assert!(!is_placeholder_author(name), "{name:?}");
        }
        let m = mention(Some(" Jane Doe "), "https://news.example/a");
        assert_eq!(mute_keys(&m).author.as_deref(), Some("author:rss:jane doe"));
    }
}
