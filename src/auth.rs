//! Who may write: the configured tokens and the one comparison every door
//! uses (the API's bearer header, the web forms' token field, the upload
//! form's first part). It knows nothing of routes or responses, so the
//! upload intake can check a token without depending on the doors.

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;

/// What a form hears when its token field is missing or wrong.
pub const INVALID_TOKEN: &str = "the token is missing or not valid";

/// The token of an `Authorization: Bearer <token>` header, trimmed.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::trim)
}

/// Whether `given` may write: there are no tokens, or it is one of them. The
/// one check for the API's bearer header and the web forms' token field;
/// every configured token is compared, each in constant time.
pub fn token_allowed(tokens: &[String], given: Option<&str>) -> bool {
    if tokens.is_empty() {
        return true;
    }
    let Some(given) = given else { return false };
    tokens.iter().fold(false, |found, t| found | constant_time_eq(t.as_bytes(), given.as_bytes()))
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_token_passes_when_none_is_configured() {
        assert!(token_allowed(&[], None));
        assert!(token_allowed(&[], Some("anything")));
    }

    #[test]
    fn only_a_configured_token_passes_when_some_are() {
        let tokens = vec!["first".to_string(), "second".to_string()];
        assert!(token_allowed(&tokens, Some("second")));
        assert!(!token_allowed(&tokens, Some("secon")));
        assert!(!token_allowed(&tokens, Some("second ")));
        assert!(!token_allowed(&tokens, Some("")));
        assert!(!token_allowed(&tokens, None));
    }

    #[test]
    fn the_bearer_token_is_read_trimmed_and_only_with_its_scheme() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(AUTHORIZATION, "Bearer  secret ".parse().unwrap());
        assert_eq!(bearer_token(&headers), Some("secret"));
        headers.insert(AUTHORIZATION, "Basic c2VjcmV0".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
    }
}
