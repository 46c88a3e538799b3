//! Discord's wire formats the tests share: interactions signed with the test key pair,
//! multipart bodies, and the spec check of the daemon's answers to interactions.

use super::discord::{describe, ops};
use super::discord_spec;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::Value;

/// The test application's key pair (a fixed seed, so the public key can go into configs).
pub fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

pub fn public_key_hex() -> String {
    hex::encode(signing_key().verifying_key().to_bytes())
}

/// Signs `timestamp + body` as Discord does; returns the hex signature.
pub fn sign(timestamp: &str, body: &str) -> String {
    let mut msg = timestamp.as_bytes().to_vec();
    msg.extend_from_slice(body.as_bytes());
    hex::encode(signing_key().sign(&msg).to_bytes())
}

/// (form field or message id, file name, content type, bytes).
pub type UploadedFile = (String, String, String, Vec<u8>);

/// The parts of a multipart/form-data body: (name, file name, content type, bytes).
pub fn multipart_parts(body: &[u8], boundary: &str) -> Vec<UploadedFile> {
    let delim = format!("--{boundary}");
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(start) = find(rest, delim.as_bytes()) {
        rest = &rest[start + delim.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let Some(head_end) = find(rest, b"\r\n\r\n") else {
            break;
        };
        let head = String::from_utf8_lossy(&rest[..head_end]).to_string();
        let content = &rest[head_end + 4..];
        let end = find(content, delim.as_bytes()).unwrap_or(content.len());
        let data = content[..end]
            .strip_suffix(b"\r\n")
            .unwrap_or(&content[..end]);
        let attr = |key: &str| {
            head.split(';')
                .map(str::trim)
                .find_map(|kv| kv.strip_prefix(&format!("{key}=\"")))
                .and_then(|v| v.split('"').next())
                .unwrap_or_default()
                .to_string()
        };
        let ctype = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type:")
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_default();
        out.push((attr("name"), attr("filename"), ctype, data.to_vec()));
        rest = &content[end..];
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The daemon's HTTP answer to an interaction Discord posted to `/discord/interactions`:
/// Discord validates it like a callback (`POST /interactions/{id}/{token}/callback`) and
/// shows "This interaction failed" when it breaks the spec. Panics (failing the test) when it
/// does; otherwise hands the response back unchanged for the test to read.
pub async fn checked_interaction_answer(resp: reqwest::Response) -> reqwest::Response {
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("interaction answer body");
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.is_success() && is_json {
        let body: Value = serde_json::from_slice(&bytes).expect("interaction answer is JSON");
        let errors = discord_spec::check_body(ops::CALLBACK, &body);
        if !errors.is_empty() {
            let lines: Vec<String> = errors
                .iter()
                .map(|e| format!("  {}: {}", e.dotted(), describe(&body, e)))
                .collect();
            panic!(
                "the daemon answered a Discord interaction with a body Discord refuses (400 50035):\n{}\n{}",
                lines.join("\n"),
                discord_spec::invalid_form_body(&errors)
            );
        }
    }
    let mut out = axum::http::Response::builder().status(status);
    for (k, v) in &headers {
        out = out.header(k, v);
    }
    reqwest::Response::from(out.body(bytes).unwrap())
}
