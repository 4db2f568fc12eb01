//! A `*` / `?` name matcher for `--tensors`: tensor names are plain
//! strings, and a dependency for two wildcards is not worth its weight.

/// Whether `name` matches `pattern`, where `*` matches any run of
/// characters (dots included) and `?` any one character.
///
/// ```
/// use modeltool_stats::glob_match;
///
/// assert!(glob_match("*.weight", "encoder.layer.0.weight"));
/// assert!(glob_match("layer.?.bias", "layer.3.bias"));
/// assert!(!glob_match("layer.?.bias", "layer.10.bias"));
/// ```
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut i, mut j) = (0, 0);
    // Where the last `*` was, and where in `name` it is tried to end.
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn wildcards() {
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "a.b"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("*.*", "fc.weight"));
        assert!(!glob_match("fc.weight", "fc.weights"));
        assert!(glob_match("fc.weight*", "fc.weights"));
        assert!(glob_match("?é", "xé"));
    }
}
