//! Finds the Kubernetes/Istio YAML snippets in the seed articles and undoes their markup.
//!
//! Two text formats occur. Plain text (seeds 000-003): YAML sits in code fences, often
//! after a shell command, sometimes indented under a list item. Markdown export (seed
//! 004): every YAML line is wrapped in bold, `**  name: my-gateway**\`, indented with
//! non-breaking spaces, with `\'`, `\"`, `\*`, `\_`... escapes; a trailing `\` is a hard
//! line break, and a bold run without one is soft-wrapped onto the next line.
//!
//! A snippet starts at an `apiVersion:` line (or a `kind:` line just before one) and runs
//! until the prose resumes: the closing code fence, a heredoc's `EOF`, a blank line, or the
//! end of the bold run. Blocks holding several documents are split at `---`.

/// One YAML document found in a seed.
#[derive(Debug, Clone)]
pub struct Snippet {
    /// The seed's file name.
    pub seed: String,
    /// The 1-based seed line of the snippet's first line.
    pub line: usize,
    /// The YAML, markup removed and dedented, one line per YAML line.
    pub text: String,
    /// For each line of `text`, the seed line it came from.
    pub lines: Vec<usize>,
    /// As written (`networking.istio.io/v1alpha3`); empty when the snippet has none.
    pub api_version: String,
    /// As written (`VirtualService`); empty when the snippet has none.
    pub kind: String,
}

impl Snippet {
    /// The seed line of a line of `text` (1-based). A line past the end (where a parser
    /// reports a document that ends too early) counts on from the last line.
    pub fn seed_line(&self, text_line: usize) -> usize {
        match text_line.checked_sub(1) {
            Some(i) if i < self.lines.len() => self.lines[i],
            Some(i) => self
                .lines
                .last()
                .map_or(0, |last| last + i + 1 - self.lines.len()),
            None => 0,
        }
    }
}

/// A line of a block: its seed line and its text with the markup removed.
type Line = (usize, String);

/// Every snippet of one seed, in order.
pub fn extract(seed: &str, text: &str) -> Vec<Snippet> {
    let raw: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut fence = false;
    let mut heredoc = false;
    let mut i = 0;
    while i < raw.len() {
        let line = raw[i];
        if is_fence(line) {
            fence = !fence;
            heredoc = false;
            i += 1;
            continue;
        }
        if fence && is_heredoc_start(line) {
            heredoc = true;
        }
        let (block, next) = if line.starts_with("**") {
            match bold_content(line) {
                Some(c) if starts_object(&c) => bold_block(&raw, i),
                _ => (Vec::new(), i + 1),
            }
        } else if starts_object(line) {
            plain_block(&raw, i, fence, heredoc)
        } else {
            (Vec::new(), i + 1)
        };
        out.extend(documents(seed, block));
        // A plain block inside a fence stops before the fence closes: the loop sees it.
        i = next.max(i + 1);
    }
    out
}

/// The block of YAML that starts at `line` (1-based), taken as a whole even though it has
/// no `apiVersion` (for fragments the test wraps into objects). It ends where the block
/// does, or where the article elides the rest with `...`.
pub fn fragment(seed: &str, text: &str, line: usize) -> Option<Snippet> {
    let raw: Vec<&str> = text.lines().collect();
    let start = line.checked_sub(1)?;
    let (mut block, _) = if raw.get(start)?.starts_with("**") {
        bold_block(&raw, start)
    } else {
        let in_fence = raw[..start].iter().filter(|l| is_fence(l)).count() % 2 == 1;
        plain_block(&raw, start, in_fence, false)
    };
    if let Some(cut) = block.iter().skip(1).position(|(_, s)| s.trim() == "...") {
        block.truncate(cut + 1);
    }
    let lines: Vec<Line> = dedent(block);
    let first = lines.first()?.0;
    Some(Snippet {
        seed: seed.to_string(),
        line: first,
        text: join(&lines),
        lines: lines.iter().map(|(n, _)| *n).collect(),
        api_version: String::new(),
        kind: String::new(),
    })
}

fn is_fence(line: &str) -> bool {
    line.trim_start().starts_with("```")
}

fn is_heredoc_start(line: &str) -> bool {
    let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
    compact.contains("<<EOF") || compact.contains("<<'EOF'") || compact.contains("<<\"EOF\"")
}

/// Whether a line opens an object: `apiVersion:` at the start (not `- apiVersion:`, which
/// is an item of a `kind: List` already inside a block).
fn starts_object(line: &str) -> bool {
    line.trim_start().starts_with("apiVersion:")
}

/// A plain-text block from `start` to the end of its fence, its heredoc, or (outside a
/// fence) the first blank line. A `kind:` line just before `start` belongs to it.
fn plain_block(raw: &[&str], start: usize, fence: bool, heredoc: bool) -> (Vec<Line>, usize) {
    let mut from = start;
    if start > 0 && raw[start - 1].trim_start().starts_with("kind:") {
        from = start - 1;
    }
    let mut end = start;
    while end < raw.len() {
        let line = raw[end];
        let stop = if fence {
            is_fence(line) || (heredoc && line.trim() == "EOF")
        } else {
            line.trim().is_empty()
        };
        if stop {
            break;
        }
        end += 1;
    }
    let block = (from..end).map(|i| (i + 1, raw[i].to_string())).collect();
    (block, end)
}

/// The text inside the bold markup of a line that opens a bold run, as YAML.
fn bold_content(line: &str) -> Option<String> {
    let rest = line.strip_prefix("**")?;
    let rest = rest.strip_suffix('\\').unwrap_or(rest);
    let rest = rest.strip_suffix("**").unwrap_or(rest);
    Some(unescape(&rest.replace('\u{a0}', " ")))
}

/// A bold (markdown-export) block starting at `start`: logical lines joined across soft
/// wraps, until a line closes the bold run without a hard break.
fn bold_block(raw: &[&str], start: usize) -> (Vec<Line>, usize) {
    let mut out: Vec<Line> = Vec::new();
    let mut i = start;
    if start > 0
        && let Some(prev) = bold_content(raw[start - 1])
        && raw[start - 1].ends_with("**\\")
        && prev.trim_start().starts_with("kind:")
    {
        i = start - 1;
    }
    let mut in_bold = false;
    let mut current: Option<Line> = None;
    while i < raw.len() {
        let mut s = raw[i].replace('\u{a0}', " ");
        if !in_bold {
            match s.strip_prefix("**") {
                Some(rest) => s = rest.to_string(),
                None => break,
            }
            in_bold = true;
        }
        let hard_break = s.ends_with('\\');
        if hard_break {
            s.pop();
        }
        let closes = s.ends_with("**");
        if closes {
            s.truncate(s.len() - 2);
            in_bold = false;
        }
        current = Some(match current.take() {
            None => (i + 1, s),
            Some((n, text)) => (n, format!("{} {}", text.trim_end(), s.trim_start())),
        });
        i += 1;
        if hard_break || closes {
            let (n, text) = current.take().unwrap_or_default();
            out.push((n, unescape(&text)));
        }
        if closes && !hard_break {
            break;
        }
    }
    if let Some((n, text)) = current {
        out.push((n, unescape(&text)));
    }
    (out, i)
}

/// Undoes markdown's backslash escapes (`\"` -> `"`, `\*` -> `*`, `\\` -> `\`).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(&n)) if n.is_ascii_punctuation() => {
                out.push(n);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// Removes the indentation of the block's first YAML line from every line (code under a
/// list item is indented; the YAML inside is not).
fn dedent(block: Vec<Line>) -> Vec<Line> {
    let indent = |s: &str| s.len() - s.trim_start_matches(' ').len();
    let base = block
        .iter()
        .find(|(_, s)| !s.trim().is_empty() && s.trim() != "---")
        .map_or(0, |(_, s)| indent(s));
    block
        .into_iter()
        .map(|(n, s)| {
            let cut = indent(&s).min(base);
            (n, s[cut..].trim_end().to_string())
        })
        .collect()
}

/// Splits a block into its documents and keeps those that name an apiVersion or a kind.
fn documents(seed: &str, block: Vec<Line>) -> Vec<Snippet> {
    let mut docs: Vec<Vec<Line>> = vec![Vec::new()];
    for (n, s) in dedent(block) {
        if s.trim() == "---" {
            docs.push(Vec::new());
        } else if let Some(doc) = docs.last_mut() {
            doc.push((n, s));
        }
    }
    docs.into_iter()
        .filter_map(|mut doc| {
            while doc.last().is_some_and(|(_, s)| s.trim().is_empty()) {
                doc.pop();
            }
            let skip = doc.iter().take_while(|(_, s)| s.trim().is_empty()).count();
            doc.drain(..skip);
            let field = |key: &str| {
                doc.iter()
                    .find_map(|(_, s)| s.strip_prefix(key))
                    .map(|v| v.trim().to_string())
                    .unwrap_or_default()
            };
            let (api_version, kind) = (field("apiVersion:"), field("kind:"));
            if api_version.is_empty() && kind.is_empty() {
                return None;
            }
            Some(Snippet {
                seed: seed.to_string(),
                line: doc.first()?.0,
                text: join(&doc),
                lines: doc.iter().map(|(n, _)| *n).collect(),
                api_version,
                kind,
            })
        })
        .collect()
}

fn join(lines: &[Line]) -> String {
    let mut text: String = lines.iter().map(|(_, s)| format!("{s}\n")).collect();
    if text.is_empty() {
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_fence_after_a_command_ends_at_the_fence() {
        let text = "Intro\n```\n$ kubectl get vs -o yaml\napiVersion: v1\nkind: List\nitems:\n- apiVersion: x/v1\n  kind: X\n```\nprose\n";
        let s = extract("s.txt", text);
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].line, 4);
        assert_eq!(s[0].kind, "List");
        assert_eq!(
            s[0].text,
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: x/v1\n  kind: X\n"
        );
        assert_eq!(s[0].lines, vec![4, 5, 6, 7, 8]);
    }

    #[test]
    fn indented_fence_is_dedented_split_and_keeps_a_stray_eof() {
        let text = "* item\n  ```yaml\n  apiVersion: a/v1\n  kind: A\n  ---\n  apiVersion: b/v1\n  kind: B\n  spec:\n    x: 1\n  EOF\n  ```\n";
        let s = extract("s.txt", text);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!((s[0].line, s[0].kind.as_str()), (3, "A"));
        assert_eq!((s[1].line, s[1].kind.as_str()), (6, "B"));
        assert_eq!(s[1].text, "apiVersion: b/v1\nkind: B\nspec:\n  x: 1\nEOF\n");
        assert_eq!(s[1].seed_line(5), 10);
    }

    #[test]
    fn heredoc_ends_at_eof() {
        let text = "```\ncat <<EOF | kubectl apply -f -\napiVersion: a/v1\nkind: A\nEOF\nkubectl get a\n```\n";
        let s = extract("s.txt", text);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].text, "apiVersion: a/v1\nkind: A\n");
    }

    #[test]
    fn bold_lines_are_unwrapped_unescaped_and_joined_across_soft_wraps() {
        let nb = '\u{a0}';
        let text = format!(
            "Prose:\n\n**apiVersion: v1**\\\n**kind: Service**\\\n**metadata:**\\\n**{nb} name: \\\"x\\\"**\\\n**{nb} hosts: \\[\\\"\\*\\\"\\]**\\\n**{nb} principals:\n\\[\\\"a/b\\\"\\]**\n\nProse again.\n"
        );
        let s = extract("s.txt", &text);
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(
            s[0].text,
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: \"x\"\n  hosts: [\"*\"]\n  principals: [\"a/b\"]\n"
        );
        assert_eq!(s[0].lines, vec![3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn bold_block_splits_at_escaped_dashes_and_takes_kind_before_api_version() {
        let text = "**apiVersion: apps/v1**\\\n**kind: Deployment**\\\n**\\-\\--**\\\n**kind: Service**\\\n**apiVersion: v1**\\\n**metadata: {}**\n";
        let s = extract("s.txt", text);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!((s[1].line, s[1].kind.as_str()), (4, "Service"));
        assert_eq!(s[1].api_version, "v1");
    }

    #[test]
    fn bold_hard_break_inside_a_run_starts_a_new_line() {
        let text = "**apiVersion: v1**\\\n**kind: A**\\\n**a: 20\\\nb: 1**\\\n**c: 2**\n";
        let s = extract("s.txt", text);
        assert_eq!(s[0].text, "apiVersion: v1\nkind: A\na: 20\nb: 1\nc: 2\n");
        assert_eq!(s[0].lines, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn fragments_are_not_snippets_but_can_be_taken_explicitly() {
        let text = "```\nspec:\n  hosts:\n  - a\n```\n";
        assert!(extract("s.txt", text).is_empty());
        let f = fragment("s.txt", text, 2).expect("a fragment at line 2");
        assert_eq!(f.text, "spec:\n  hosts:\n  - a\n");
        assert_eq!(f.line, 2);
    }

    #[test]
    fn bold_fragment_stops_at_an_ellipsis() {
        let text = "**...**\\\n**- route:**\\\n**  timeout: 1s**\\\n**...**\n";
        let f = fragment("s.txt", text, 2).expect("a fragment at line 2");
        assert_eq!(f.text, "- route:\n  timeout: 1s\n");
        assert_eq!(f.lines, vec![2, 3]);
    }
}
