//! `X-Hub-Signature-256`: HMAC-SHA256 of the raw body with the shared secret.

use hmac::{KeyInit, Mac};
use sha2::Sha256;

/// Whether `header` (`sha256=<hex>`) signs `body` with `secret`; the
/// comparison takes the same time wherever the first difference is.
pub fn verify(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_digest) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_digest.trim()) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The header value for `body` (for tests and tools).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_githubs_documented_example() {
        // From GitHub's "Validating webhook deliveries" documentation.
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(verify("It's a Secret to Everybody", b"Hello, World!", Some(header)));
        assert!(!verify("It's a Secret to Everybody", b"Hello, World?", Some(header)));
        assert!(!verify("another secret", b"Hello, World!", Some(header)));
        assert!(!verify("It's a Secret to Everybody", b"Hello, World!", None));
        assert!(!verify("It's a Secret to Everybody", b"Hello, World!", Some("sha1=abc")));
        assert_eq!(sign("It's a Secret to Everybody", b"Hello, World!"), header);
    }
}
