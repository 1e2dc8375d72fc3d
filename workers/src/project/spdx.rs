//! The syntax of an SPDX license expression (PEP 639 `project.license =
//! "MIT OR Apache-2.0"`), checked so that prose such as `MIT License` or
//! `Apache 2.0` is refused before it lands in `License-Expression`.
//!
//! This checks the grammar of SPDX 2.3 annex D (identifiers, `+`,
//! `LicenseRef-`/`DocumentRef-`, `AND`/`OR`/`WITH`, parentheses), not that
//! an identifier is on the SPDX list: the list changes with each release
//! and a newer identifier must not be refused by an older wheelwright.

/// Checks `expr` and returns it with the operators in upper case (SPDX
/// matches them case-insensitively, tools reading the metadata expect them
/// upper-case), or says what is wrong.
pub fn normalize(expr: &str) -> Result<String, String> {
    let tokens = tokenize(expr)?;
    if tokens.is_empty() {
        return Err("is empty; give an SPDX expression such as \"MIT\" or \"MIT OR Apache-2.0\"".into());
    }
    let mut parser = Parser { tokens: &tokens, at: 0 };
    parser.or_expr()?;
    if let Some(token) = tokens.get(parser.at) {
        return Err(format!(
            "`{expr}` is not an SPDX expression: `{}` where AND, OR or WITH was expected \
             (an SPDX identifier has no spaces: \"Apache-2.0\", not \"Apache 2.0\")",
            token.text()
        ));
    }
    let mut out = String::new();
    for (i, token) in tokens.iter().enumerate() {
        let text = token.text();
        let after_open = i > 0 && matches!(tokens[i - 1], Token::Open);
        if i > 0 && !after_open && !matches!(token, Token::Close) {
            out.push(' ');
        }
        out.push_str(&text);
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    With,
    Word(String),
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::And => "AND".into(),
            Token::Or => "OR".into(),
            Token::With => "WITH".into(),
            Token::Word(w) => w.clone(),
        }
    }
}

fn tokenize(expr: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    for chunk in expr.split_ascii_whitespace() {
        let mut word = String::new();
        let flush = |word: &mut String, tokens: &mut Vec<Token>| {
            if !word.is_empty() {
                tokens.push(match word.to_ascii_uppercase().as_str() {
                    "AND" => Token::And,
                    "OR" => Token::Or,
                    "WITH" => Token::With,
                    _ => Token::Word(std::mem::take(word)),
                });
                word.clear();
            }
        };
        for c in chunk.chars() {
            match c {
                '(' | ')' => {
                    flush(&mut word, &mut tokens);
                    tokens.push(if c == '(' { Token::Open } else { Token::Close });
                }
                c if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | ':') => word.push(c),
                c => return Err(format!("`{expr}` is not an SPDX expression: `{c}` cannot appear in one")),
            }
        }
        flush(&mut word, &mut tokens);
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
}

impl Parser<'_> {
    fn or_expr(&mut self) -> Result<(), String> {
        self.and_expr()?;
        while self.tokens.get(self.at) == Some(&Token::Or) {
            self.at += 1;
            self.and_expr()?;
        }
        Ok(())
    }

    fn and_expr(&mut self) -> Result<(), String> {
        self.with_expr()?;
        while self.tokens.get(self.at) == Some(&Token::And) {
            self.at += 1;
            self.with_expr()?;
        }
        Ok(())
    }

    fn with_expr(&mut self) -> Result<(), String> {
        match self.tokens.get(self.at) {
            Some(Token::Open) => {
                self.at += 1;
                self.or_expr()?;
                if self.tokens.get(self.at) != Some(&Token::Close) {
                    return Err("has a `(` without its `)`".into());
                }
                self.at += 1;
                Ok(())
            }
            Some(Token::Word(word)) => {
                license_ref(word)?;
                self.at += 1;
                if self.tokens.get(self.at) == Some(&Token::With) {
                    self.at += 1;
                    match self.tokens.get(self.at) {
                        Some(Token::Word(exception)) if is_idstring(exception) => self.at += 1,
                        _ => return Err("has WITH without an exception identifier after it".into()),
                    }
                }
                Ok(())
            }
            Some(other) => Err(format!("has `{}` where a license identifier was expected", other.text())),
            None => Err("ends where a license identifier was expected".into()),
        }
    }
}

/// `MIT`, `GPL-2.0+`, `LicenseRef-mine`, `DocumentRef-doc:LicenseRef-mine`.
fn license_ref(word: &str) -> Result<(), String> {
    let bad = || format!("`{word}` is not an SPDX license identifier");
    if let Some((doc, lic)) = word.split_once(':') {
        let ok = doc.strip_prefix("DocumentRef-").is_some_and(is_idstring)
            && lic.strip_prefix("LicenseRef-").is_some_and(is_idstring);
        return if ok { Ok(()) } else { Err(bad()) };
    }
    let id = word.strip_suffix('+').unwrap_or(word);
    if is_idstring(id) && id.chars().any(|c| c.is_ascii_alphabetic()) {
        Ok(())
    } else {
        Err(bad())
    }
}

fn is_idstring(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_spdx_expressions_and_upper_cases_the_operators() {
        assert_eq!(normalize("MIT").unwrap(), "MIT");
        assert_eq!(normalize("mit or Apache-2.0").unwrap(), "mit OR Apache-2.0");
        assert_eq!(
            normalize("(MIT AND BSD-3-Clause) or GPL-2.0+ with Classpath-exception-2.0").unwrap(),
            "(MIT AND BSD-3-Clause) OR GPL-2.0+ WITH Classpath-exception-2.0"
        );
        assert_eq!(normalize("LicenseRef-Proprietary").unwrap(), "LicenseRef-Proprietary");
        assert_eq!(normalize("DocumentRef-x:LicenseRef-y").unwrap(), "DocumentRef-x:LicenseRef-y");
    }

    #[test]
    fn refuses_prose_and_broken_expressions() {
        for bad in ["", "MIT License", "Apache 2.0", "MIT AND", "OR MIT", "(MIT", "MIT)", "GPL, v3", "MIT WITH", "2.0"]
        {
            assert!(normalize(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(normalize("Apache 2.0").unwrap_err().contains("`2.0` where AND, OR or WITH was expected"));
    }
}
