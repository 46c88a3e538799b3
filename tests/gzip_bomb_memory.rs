//! A gzip bomb must be cut off at the body cap without ever holding the inflated body:
//! this binary counts live heap bytes with its own global allocator and checks the peak.
//! It stays out of the one integration binary (`tests/it/`) on purpose: a global allocator
//! counts the whole process, so any other test running beside it would move the peak.

use axum::http::header;
use axum::routing::get;
use axum::Router;
use mentiondesk::sources::http::Fetcher;
use mentiondesk::sources::{SourceError, SourceKind, SourceSpec, SourceState};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(live, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[tokio::test]
async fn a_gzip_bomb_never_inflates_past_the_cap_in_memory() {
    const INFLATED: usize = 256 << 20; // 256 MiB of zeros, about 256 KiB compressed
    const CAP: u64 = 1 << 20;
    let bomb = bytes_of(gzip_zeros(INFLATED));
    assert!(bomb.len() < 1 << 20);
    let router = Router::new().route(
        "/bomb",
        get(move || {
            let bomb = bomb.clone();
            async move { ([(header::CONTENT_ENCODING, "gzip")], bomb) }
        }),
    );
    let addr = serve(router).await;
    let spec = SourceSpec {
        name: "bomb".to_string(),
        kind: SourceKind::Rss,
        url: None,
        path: None,
        query: None,
        every: Duration::from_secs(60),
        timeout: Duration::from_secs(10),
        max_body_bytes: CAP,
        allow_private: true, // the fake server is on 127.0.0.1
        api: Default::default(),
    };
    let fetcher = Fetcher::new(&spec).unwrap();

    let baseline = LIVE.load(Ordering::SeqCst);
    PEAK.store(baseline, Ordering::SeqCst);
    let err = fetcher
        .fetch(&format!("http://{addr}/bomb"), &SourceState::default())
        .await
        .unwrap_err();
    let peak_growth = PEAK.load(Ordering::SeqCst) - baseline;

    assert!(
        matches!(err, SourceError::TooLarge { limit: CAP }),
        "{err:?}"
    );
    // The cap (doubling Vec growth: up to 2x), one chunk, the compressed body held by the
    // server and buffers: far below the 256 MiB the bomb inflates to.
    assert!(
        peak_growth < 8 << 20,
        "peak heap grew by {} MiB while fetching a bomb",
        peak_growth >> 20
    );
}

fn bytes_of(v: Vec<u8>) -> axum::body::Bytes {
    axum::body::Bytes::from(v)
}

/// `n` zero bytes, gzip-compressed.
fn gzip_zeros(n: usize) -> Vec<u8> {
    use flate2::write::GzEncoder;
    use std::io::Write;
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![0u8; 1 << 20];
    let mut left = n;
    while left > 0 {
        let k = left.min(block.len());
        enc.write_all(&block[..k]).unwrap();
        left -= k;
    }
    enc.finish().unwrap()
}

/// Serves `router` on 127.0.0.1 with an OS-chosen port.
async fn serve(router: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}
