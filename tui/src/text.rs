//! Message bodies as terminal lines: Markdown rendered simply (emphasis, code, headings,
//! lists, quotes, links) and wrapping that knows Chinese characters take two columns and
//! may break anywhere, while Latin words break at spaces.
//!
//! Pure functions; the scrollback caches their output per message and width.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthChar;

/// One logical line: styled runs, before wrapping.
pub type StyledLine = Vec<(String, Style)>;

/// Styles Markdown uses; the theme picks them.
#[derive(Debug, Clone, Copy, Default)]
pub struct MarkdownStyles {
    /// Inline and block code.
    pub code: Style,
    /// Links' targets and quote bars.
    pub dim: Style,
    /// Headings.
    pub heading: Style,
}

/// Plain text: one logical line per line of the body.
pub fn plain(body: &str, style: Style) -> Vec<StyledLine> {
    body.lines().map(|line| vec![(line.replace('\t', "    "), style)]).collect()
}

/// CommonMark rendered to styled logical lines.
pub fn markdown(body: &str, base: Style, styles: &MarkdownStyles) -> Vec<StyledLine> {
    let mut out: Vec<StyledLine> = Vec::new();
    let mut line: StyledLine = Vec::new();
    let mut stack: Vec<Style> = vec![base];
    // Ordered-list counters, one per open list (None: bullets).
    let mut lists: Vec<Option<u64>> = Vec::new();
    let mut quote_depth = 0usize;
    let mut link_targets: Vec<String> = Vec::new();
    let mut in_code_block = false;

    let flush = |line: &mut StyledLine, out: &mut Vec<StyledLine>| {
        out.push(std::mem::take(line));
    };
    let start_line = |line: &mut StyledLine, quote_depth: usize| {
        if quote_depth > 0 && line.is_empty() {
            line.push(("│ ".repeat(quote_depth), styles.dim));
        }
    };

    let options = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES;
    for event in Parser::new_ext(body, options) {
        let current = *stack.last().unwrap_or(&base);
        match event {
            Event::Start(tag) => match tag {
                Tag::Strong => stack.push(current.add_modifier(Modifier::BOLD)),
                Tag::Emphasis => stack.push(current.add_modifier(Modifier::ITALIC)),
                Tag::Strikethrough => stack.push(current.add_modifier(Modifier::CROSSED_OUT)),
                Tag::Heading { .. } => stack.push(styles.heading),
                Tag::BlockQuote(_) => quote_depth += 1,
                Tag::CodeBlock(_) => in_code_block = true,
                Tag::List(start) => lists.push(start),
                Tag::Item => {
                    if !line.is_empty() {
                        flush(&mut line, &mut out);
                    }
                    let indent = "  ".repeat(lists.len().saturating_sub(1));
                    let marker = match lists.last_mut() {
                        Some(Some(n)) => {
                            let m = format!("{indent}{n}. ");
                            *n += 1;
                            m
                        }
                        _ => format!("{indent}• "),
                    };
                    start_line(&mut line, quote_depth);
                    line.push((marker, current));
                }
                Tag::Link { dest_url, .. } => {
                    link_targets.push(dest_url.to_string());
                    stack.push(current.add_modifier(Modifier::UNDERLINED));
                }
                _ => {}
            },
            Event::End(tag) => match tag {
                TagEnd::Strong | TagEnd::Emphasis | TagEnd::Strikethrough => {
                    stack.pop();
                }
                TagEnd::Heading(_) => {
                    stack.pop();
                    flush(&mut line, &mut out);
                }
                TagEnd::Paragraph | TagEnd::TableRow | TagEnd::TableHead | TagEnd::Item if !line.is_empty() => {
                    flush(&mut line, &mut out);
                }
                TagEnd::BlockQuote(_) => quote_depth = quote_depth.saturating_sub(1),
                TagEnd::CodeBlock => in_code_block = false,
                TagEnd::List(_) => {
                    lists.pop();
                }
                TagEnd::Link => {
                    stack.pop();
                    if let Some(url) = link_targets.pop() {
                        line.push((format!(" <{url}>"), styles.dim));
                    }
                }
                _ => {}
            },
            Event::Text(text) if in_code_block => {
                for code_line in text.lines() {
                    start_line(&mut line, quote_depth);
                    line.push((format!("  {}", code_line.replace('\t', "    ")), styles.code));
                    flush(&mut line, &mut out);
                }
            }
            Event::Text(text) | Event::Html(text) | Event::InlineHtml(text) => {
                start_line(&mut line, quote_depth);
                line.push((text.to_string(), current));
            }
            Event::Code(code) => {
                start_line(&mut line, quote_depth);
                line.push((code.to_string(), styles.code));
            }
            Event::SoftBreak => line.push((" ".into(), current)),
            Event::HardBreak => flush(&mut line, &mut out),
            Event::Rule => {
                out.push(vec![("────────".into(), styles.dim)]);
            }
            Event::TaskListMarker(done) => line.push((if done { "[x] " } else { "[ ] " }.into(), current)),
            _ => {}
        }
    }
    if !line.is_empty() {
        out.push(line);
    }
    out
}

/// Display width of a character (control characters count as zero).
fn char_width(c: char) -> usize {
    c.width().unwrap_or(0)
}

/// Wraps logical lines to `width` columns, each line prefixed by `indent`.
pub fn wrap(lines: &[StyledLine], width: u16, indent: &str) -> Vec<Line<'static>> {
    let indent_width: usize = indent.chars().map(char_width).sum();
    let width = (width as usize).saturating_sub(indent_width).max(1);
    let mut out = Vec::new();
    for logical in lines {
        wrap_one(logical, width, indent, &mut out);
    }
    if out.is_empty() {
        out.push(Line::from(indent.to_string()));
    }
    out
}

/// A token of the wrapper: a Latin word, one space, or one wide character.
struct Token {
    chars: Vec<(char, Style)>,
    width: usize,
    is_space: bool,
}

fn tokens(logical: &StyledLine) -> Vec<Token> {
    let mut out: Vec<Token> = Vec::new();
    for (text, style) in logical {
        for c in text.chars() {
            let w = char_width(c);
            let is_space = c.is_whitespace();
            let is_wide = w > 1;
            let extends_word = !is_space
                && !is_wide
                && out.last().is_some_and(|t| !t.is_space && t.chars.iter().all(|(c, _)| char_width(*c) <= 1));
            if extends_word {
                let last = out.last_mut().expect("checked");
                last.chars.push((c, *style));
                last.width += w;
            } else {
                out.push(Token { chars: vec![(c, *style)], width: w, is_space });
            }
        }
    }
    out
}

fn wrap_one(logical: &StyledLine, width: usize, indent: &str, out: &mut Vec<Line<'static>>) {
    let mut row: Vec<(char, Style)> = Vec::new();
    let mut used = 0usize;
    let emit = |row: &mut Vec<(char, Style)>, out: &mut Vec<Line<'static>>| {
        while row.last().is_some_and(|(c, _)| *c == ' ') {
            row.pop();
        }
        let mut spans = vec![Span::raw(indent.to_string())];
        let mut text = String::new();
        let mut style = None;
        for (c, s) in row.drain(..) {
            if style.is_some_and(|cur| cur != s) {
                spans.push(Span::styled(std::mem::take(&mut text), style.unwrap_or_default()));
            }
            style = Some(s);
            text.push(c);
        }
        if !text.is_empty() {
            spans.push(Span::styled(text, style.unwrap_or_default()));
        }
        out.push(Line::from(spans));
    };
    for token in tokens(logical) {
        if used + token.width <= width {
            used += token.width;
            row.extend(token.chars);
        } else if token.is_space {
            // A space at a break is dropped.
            emit(&mut row, out);
            used = 0;
        } else if token.width <= width {
            emit(&mut row, out);
            used = token.width;
            row.extend(token.chars);
        } else {
            // Longer than a line: break it by characters.
            for (c, s) in token.chars {
                let w = char_width(c);
                if used + w > width && !row.is_empty() {
                    emit(&mut row, out);
                    used = 0;
                }
                used += w;
                row.push((c, s));
            }
        }
    }
    emit(&mut row, out);
}

/// Display width of a string.
pub fn width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// `s` cut to at most `max` columns, with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = char_width(c);
        if used + w + 1 > max {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[Line<'_>]) -> Vec<String> {
        lines.iter().map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect()).collect()
    }

    fn check(body: &str, width: u16, expected: &[&str]) {
        let lines = wrap(&plain(body, Style::default()), width, "");
        assert_eq!(texts(&lines), expected, "{body:?} at width {width}");
        for line in &lines {
            assert!(line.width() <= width as usize, "{line:?} is wider than {width}");
        }
    }

    #[test]
    fn wraps_latin_at_spaces_and_chinese_anywhere() {
        check("Can I return these shoes?", 12, &["Can I return", "these shoes?"]);
        check("我的快递到哪了？", 6, &["我的快", "递到哪", "了？"]);
        check("我的快递到哪了？", 7, &["我的快", "递到哪", "了？"]);
        check("订单 20251120-8841 的发票", 10, &["订单 20251", "120-8841", "的发票"]);
        check("a\nb", 10, &["a", "b"]);
        check("", 10, &[""]);
    }

    #[test]
    fn markdown_is_rendered_simply() {
        let styles = MarkdownStyles::default();
        let lines = markdown(
            "# 退货政策\n\n**七天**无理由退货：\n\n- 保持包装完好\n- 附上`订单号`\n\n[详情](https://shop.example/returns)",
            Style::default(),
            &styles,
        );
        let flat: Vec<String> = lines.iter().map(|l| l.iter().map(|(t, _)| t.as_str()).collect()).collect();
        assert_eq!(
            flat,
            vec![
                "退货政策",
                "七天无理由退货：",
                "• 保持包装完好",
                "• 附上订单号",
                "详情 <https://shop.example/returns>"
            ]
        );
        assert!(lines[1][0].1.add_modifier.contains(Modifier::BOLD));
    }

    #[test]
    fn truncate_counts_columns() {
        assert_eq!(truncate("李女士的订单", 7), "李女士…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
