//! HTTP `Range` on downloads (RFC 9110 §14): one byte range, answered with
//! `206 Partial Content`; several ranges, or a syntax we do not read, get
//! the whole file (a server may ignore `Range`); a range past the end gets
//! `416`. Installers use it to read a wheel's central directory only.

/// What to answer to a `Range` header for a file of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The whole file (no header, or one we ignore).
    Full,
    /// Bytes `start..=end`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// No byte of the file is in the range.
    Unsatisfiable,
}

/// Reads `value` (`bytes=0-499`, `bytes=500-`, `bytes=-500`).
pub fn answer(value: Option<&str>, len: u64) -> Answer {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else { return Answer::Full };
    if spec.contains(',') {
        return Answer::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return Answer::Full };
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
    };
    match (first.trim().is_empty(), number(first), number(last)) {
        // A suffix: the last N bytes.
        (true, _, Some(0)) => Answer::Unsatisfiable,
        (true, _, Some(_)) if len == 0 => Answer::Unsatisfiable,
        (true, _, Some(n)) => Answer::Partial { start: len.saturating_sub(n), end: len - 1 },
        (false, Some(start), _) if start >= len => Answer::Unsatisfiable,
        (false, Some(start), None) if last.trim().is_empty() => Answer::Partial { start, end: len - 1 },
        (false, Some(start), Some(end)) if end >= start => Answer::Partial { start, end: end.min(len - 1) },
        _ => Answer::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_range_in_each_form_and_ignores_what_it_cannot_serve() {
        let partial = |start, end| Answer::Partial { start, end };
        assert_eq!(answer(None, 1000), Answer::Full);
        assert_eq!(answer(Some("bytes=0-499"), 1000), partial(0, 499));
        assert_eq!(answer(Some("bytes=500-"), 1000), partial(500, 999));
        assert_eq!(answer(Some("bytes=-200"), 1000), partial(800, 999));
        assert_eq!(answer(Some("bytes=-2000"), 1000), partial(0, 999));
        assert_eq!(answer(Some("bytes=900-5000"), 1000), partial(900, 999));
        assert_eq!(answer(Some("bytes=1000-"), 1000), Answer::Unsatisfiable);
        assert_eq!(answer(Some("bytes=-0"), 1000), Answer::Unsatisfiable);
        assert_eq!(answer(Some("bytes=0-0"), 0), Answer::Unsatisfiable);
        // Several ranges, other units, nonsense: the whole file.
        assert_eq!(answer(Some("bytes=0-1,5-6"), 1000), Answer::Full);
        assert_eq!(answer(Some("items=0-1"), 1000), Answer::Full);
        assert_eq!(answer(Some("bytes=5-1"), 1000), Answer::Full);
        assert_eq!(answer(Some("bytes=a-b"), 1000), Answer::Full);
        assert_eq!(answer(Some("bytes=+1-2"), 1000), Answer::Full);
    }
}
