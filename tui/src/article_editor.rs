//! The article editor of the knowledge-base pane, for supervisors and admins: one-line
//! fields for the title, tags, intents and language, and the multi-line composer
//! (ratatui-textarea) for the Markdown body.
//!
//! Pure like the pane: the app feeds it keys and pastes, asks it for the [`NewArticle`]
//! to save (checked here as the relay checks it, so a mistake is named before a round
//! trip), and tells it when the relay refused. It remembers what it opened with, so
//! leaving with unsaved changes can be confirmed.

use kefu_proto::api::{Article, NewArticle};
use ratatui::style::{Modifier, Style};
use ratatui_textarea::{CursorMove, TextArea, WrapMode};

use crate::api::ApiFailure;
use crate::keymap::{KeyCode, KeyPress};

/// Longest title, in characters (the relay's limit).
pub const MAX_TITLE_CHARS: usize = 200;
/// Largest body, in bytes (the relay's limit).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most tags, and the longest, in bytes (the relay's limits).
const MAX_TAGS: usize = 20;
const MAX_TAG_BYTES: usize = 32;
/// Most intents, and the longest name, in bytes (the relay's limits).
const MAX_INTENTS: usize = 10;
const MAX_INTENT_BYTES: usize = 64;

/// One field of the editor, in the order tab walks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// One line.
    Title,
    /// Comma-separated.
    Tags,
    /// Comma-separated intent names (`return_policy`).
    Intents,
    /// `zh` or `en`; follows the title's script until chosen.
    Language,
    /// Markdown, many lines.
    Body,
}

impl Field {
    /// Every field, in tab order.
    pub const ALL: [Field; 5] = [Field::Title, Field::Tags, Field::Intents, Field::Language, Field::Body];

    /// Its label on screen.
    pub fn label(self) -> &'static str {
        match self {
            Field::Title => "标题 Title",
            Field::Tags => "标签 Tags",
            Field::Intents => "意图 Intents",
            Field::Language => "语言 Language",
            Field::Body => "正文 Body (Markdown)",
        }
    }

    /// The field a message of the relay's is about: its checks start with the field's
    /// name ("title must be…", "body is blank", "at most 20 tags…", "language 'x'…").
    pub fn named_in(message: &str) -> Option<Field> {
        let message = message.to_ascii_lowercase();
        let first = message.split_whitespace().next().unwrap_or_default();
        match first {
            "title" | "slug" => Some(Field::Title),
            "body" => Some(Field::Body),
            "language" => Some(Field::Language),
            _ if message.contains("intent") => Some(Field::Intents),
            _ if message.contains("tag") => Some(Field::Tags),
            _ => None,
        }
    }
}

/// Why the article cannot be saved as it stands, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditorError {
    /// The field at fault, when one is.
    pub field: Option<Field>,
    /// What is wrong, for people.
    pub message: String,
}

/// The article replaced on save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Editing {
    /// Its id (`PUT /api/v1/kb/articles/{id}`).
    pub id: i64,
    /// Its slug, kept so links to it (`kb:slug`) keep working.
    pub slug: String,
}

/// An article being written or changed.
#[derive(Debug, Clone)]
pub struct ArticleEditor {
    /// The article replaced on save; `None` for a new one.
    pub editing: Option<Editing>,
    /// One text area per field, in [`Field::ALL`] order (the one-line fields never get a
    /// line break).
    fields: [TextArea<'static>; 5],
    /// Where keys go.
    pub focus: Field,
    /// The language was typed (or came with the article): the title no longer sets it.
    language_chosen: bool,
    /// The fields' values when opened, to tell unsaved changes.
    original: [String; 5],
    /// A save was sent and not answered yet.
    pub saving: bool,
    /// Why the last save was refused (here or by the relay).
    pub error: Option<EditorError>,
}

impl ArticleEditor {
    /// An empty article; the language follows the title until chosen.
    pub fn new_article() -> ArticleEditor {
        ArticleEditor::with(None, ["", "", "", "zh", ""].map(String::from), false)
    }

    /// `article` as stored, to change it (its slug is kept).
    pub fn edit(article: &Article) -> ArticleEditor {
        let values = [
            article.title.clone(),
            article.tags.join(", "),
            article.intents.join(", "),
            article.language.clone(),
            article.body.clone(),
        ];
        ArticleEditor::with(Some(Editing { id: article.id, slug: article.slug.clone() }), values, true)
    }

    fn with(editing: Option<Editing>, values: [String; 5], language_chosen: bool) -> ArticleEditor {
        let placeholders = [
            "一行 one line, e.g. 退货运费谁承担",
            "逗号分隔 comma-separated: 退货, 运费",
            "逗号分隔 comma-separated: return_shipping (a-z 0-9 _ -)",
            "zh 或 or en",
            "Markdown: # 标题, **粗体**, - 列表 …",
        ];
        let fields = std::array::from_fn(|i| {
            let mut area = TextArea::new(values[i].split('\n').map(String::from).collect());
            area.set_placeholder_text(placeholders[i]);
            area.set_cursor_line_style(Style::default());
            if Field::ALL[i] == Field::Body {
                area.set_wrap_mode(WrapMode::WordOrGlyph);
            } else {
                area.move_cursor(CursorMove::End);
            }
            area
        });
        let mut editor = ArticleEditor {
            editing,
            fields,
            focus: Field::Title,
            language_chosen,
            original: values,
            saving: false,
            error: None,
        };
        editor.focus_on(Field::Title);
        editor
    }

    /// The text area of `field`.
    pub fn area(&self, field: Field) -> &TextArea<'static> {
        &self.fields[index(field)]
    }

    fn area_mut(&mut self, field: Field) -> &mut TextArea<'static> {
        &mut self.fields[index(field)]
    }

    /// What `field` holds (the body's lines joined with `\n`).
    pub fn value(&self, field: Field) -> String {
        self.area(field).lines().join("\n")
    }

    /// Moves the keys to `field`; only its caret shows.
    pub fn focus_on(&mut self, field: Field) {
        self.focus = field;
        for (i, area) in self.fields.iter_mut().enumerate() {
            let style = if Field::ALL[i] == field {
                Style::default().add_modifier(Modifier::REVERSED)
            } else {
                Style::default()
            };
            area.set_cursor_style(style);
        }
    }

    /// Moves the keys `delta` fields on (wrapping).
    pub fn move_focus(&mut self, delta: isize) {
        let at = index(self.focus) as isize;
        let next = (at + delta).rem_euclid(Field::ALL.len() as isize) as usize;
        self.focus_on(Field::ALL[next]);
    }

    /// A key typed into the focused field; returns whether the text changed. In a
    /// one-line field, enter and down go to the next field and up to the previous one.
    pub fn input(&mut self, key: KeyPress) -> bool {
        let one_line = self.focus != Field::Body;
        let line_break = key.code == KeyCode::Enter || (key.ctrl && matches!(key.code, KeyCode::Char('m' | 'j')));
        if one_line {
            match key.code {
                _ if line_break => {
                    self.move_focus(1);
                    return false;
                }
                KeyCode::Down => {
                    self.move_focus(1);
                    return false;
                }
                KeyCode::Up => {
                    self.move_focus(-1);
                    return false;
                }
                _ => {}
            }
        }
        let focus = self.focus;
        let changed = self.area_mut(focus).input(crate::app::to_textarea_input(key));
        if changed {
            self.edited(focus);
        }
        changed
    }

    /// Text pasted into the focused field (line breaks become spaces in a one-line field).
    pub fn paste(&mut self, text: &str) {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let focus = self.focus;
        let text = if focus == Field::Body {
            text
        } else {
            text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
        };
        if self.area_mut(focus).insert_str(text) {
            self.edited(focus);
        }
    }

    /// After `field` changed: the title sets the language until one is chosen, and an
    /// error about the field is taken as seen.
    fn edited(&mut self, field: Field) {
        match field {
            Field::Title if !self.language_chosen => {
                let language = language_for(&self.value(Field::Title));
                if self.value(Field::Language) != language {
                    let area = self.area_mut(Field::Language);
                    area.select_all();
                    area.cut();
                    area.insert_str(language);
                }
            }
            Field::Language => self.language_chosen = true,
            _ => {}
        }
        if self.error.as_ref().is_some_and(|e| e.field == Some(field)) {
            self.error = None;
        }
    }

    /// Whether anything differs from what the editor opened with.
    pub fn is_dirty(&self) -> bool {
        Field::ALL.iter().enumerate().any(|(i, f)| self.value(*f) != self.original[i])
    }

    /// The article to send, checked as the relay checks it; the first problem otherwise.
    pub fn to_new_article(&self) -> Result<NewArticle, EditorError> {
        let bad = |field: Field, message: String| Err(EditorError { field: Some(field), message });
        let title = self.value(Field::Title).trim().to_string();
        if title.is_empty() {
            return bad(Field::Title, "title is empty: give the article a title".into());
        }
        if title.chars().count() > MAX_TITLE_CHARS {
            return bad(Field::Title, format!("title is longer than {MAX_TITLE_CHARS} characters"));
        }
        let tags = split_list(&self.value(Field::Tags));
        if tags.len() > MAX_TAGS {
            return bad(Field::Tags, format!("at most {MAX_TAGS} tags"));
        }
        if let Some(tag) = tags.iter().find(|t| t.len() > MAX_TAG_BYTES) {
            return bad(Field::Tags, format!("tag \"{tag}\" is longer than {MAX_TAG_BYTES} bytes"));
        }
        let intents = split_list(&self.value(Field::Intents));
        if intents.len() > MAX_INTENTS {
            return bad(Field::Intents, format!("at most {MAX_INTENTS} intents"));
        }
        let intent_name = |s: &str| {
            s.len() <= MAX_INTENT_BYTES
                && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        };
        if let Some(intent) = intents.iter().find(|i| !intent_name(i)) {
            return bad(Field::Intents, format!("intent \"{intent}\" may hold only a-z, 0-9, '_' and '-'"));
        }
        let language = self.value(Field::Language).trim().to_string();
        let language = if language.is_empty() { language_for(&title).to_string() } else { language };
        if !(2..=8).contains(&language.len()) || !language.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
            return bad(Field::Language, format!("language \"{language}\" is not a code such as zh or en"));
        }
        let body = self.value(Field::Body);
        if body.trim().is_empty() {
            return bad(Field::Body, "body is empty: write the article's text".into());
        }
        if body.len() > MAX_BODY_BYTES {
            return bad(Field::Body, format!("body is {} bytes; the limit is {MAX_BODY_BYTES}", body.len()));
        }
        Ok(NewArticle { slug: self.editing.as_ref().map(|e| e.slug.clone()), title, body, tags, intents, language })
    }

    /// The save failed here or at the relay: say why and go to the field at fault.
    pub fn refused(&mut self, error: EditorError) {
        self.saving = false;
        if let Some(field) = error.field {
            self.focus_on(field);
        }
        self.error = Some(error);
    }

    /// The relay refused the save: `failure` in the editor's terms.
    pub fn refused_by_relay(&mut self, failure: &ApiFailure) {
        let message = match failure.status {
            Some(403) => format!("only supervisors and admins write the knowledge base ({})", failure.message),
            _ => failure.message.clone(),
        };
        let field = Field::named_in(&failure.message);
        self.refused(EditorError { field, message });
    }
}

fn index(field: Field) -> usize {
    Field::ALL.iter().position(|f| *f == field).unwrap_or(0)
}

/// The language a title is written in: `zh` when it has Chinese characters, `en` when it
/// has Latin letters and none, `zh` (the relay's default) for anything else.
pub fn language_for(title: &str) -> &'static str {
    let han = |c: char| matches!(c, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}');
    if title.chars().any(han) {
        "zh"
    } else if title.chars().any(|c| c.is_ascii_alphabetic()) {
        "en"
    } else {
        "zh"
    }
}

/// A comma-separated list (Chinese commas too), trimmed, without blanks or repeats.
pub fn split_list(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in text.split([',', '，', '、']).map(str::trim).filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == item) {
            out.push(item.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_text(editor: &mut ArticleEditor, text: &str) {
        for c in text.chars() {
            editor.input(KeyPress::char(c));
        }
    }

    #[test]
    fn the_language_follows_the_title_until_chosen() {
        let mut editor = ArticleEditor::new_article();
        type_text(&mut editor, "Return shipping");
        assert_eq!(editor.value(Field::Language), "en");
        editor.area_mut(Field::Title).select_all();
        editor.area_mut(Field::Title).cut();
        type_text(&mut editor, "退货运费");
        assert_eq!(editor.value(Field::Language), "zh");
        editor.focus_on(Field::Language);
        editor.input(KeyPress::plain(KeyCode::Backspace));
        editor.input(KeyPress::plain(KeyCode::Backspace));
        type_text(&mut editor, "en");
        editor.focus_on(Field::Title);
        type_text(&mut editor, "谁出");
        assert_eq!(editor.value(Field::Language), "en", "chosen, so kept");
    }

    #[test]
    fn lists_take_chinese_commas_and_the_relays_checks_are_named() {
        assert_eq!(split_list(" 退货，运费, 退货、 , 发票 "), vec!["退货", "运费", "发票"]);
        let mut editor = ArticleEditor::new_article();
        assert_eq!(editor.to_new_article().unwrap_err().field, Some(Field::Title));
        type_text(&mut editor, "发票");
        assert_eq!(editor.to_new_article().unwrap_err().field, Some(Field::Body));
        editor.focus_on(Field::Intents);
        type_text(&mut editor, "Invoice Title");
        editor.focus_on(Field::Body);
        type_text(&mut editor, "可以开。");
        let error = editor.to_new_article().unwrap_err();
        assert_eq!(error.field, Some(Field::Intents));
        assert!(error.message.contains("Invoice Title"), "{}", error.message);
        assert_eq!(Field::named_in("title must be 1 to 200 characters"), Some(Field::Title));
        assert_eq!(Field::named_in("body is blank"), Some(Field::Body));
        assert_eq!(Field::named_in("at most 20 tags of 1 to 32 bytes"), Some(Field::Tags));
        assert_eq!(Field::named_in("at most 10 intents named with a-z"), Some(Field::Intents));
        assert_eq!(Field::named_in("language 'x' is not a language code"), Some(Field::Language));
        assert_eq!(Field::named_in("forbidden"), None);
    }

    #[test]
    fn one_line_fields_never_break_and_changes_are_noticed() {
        let article = Article {
            id: 4,
            slug: "return-shipping-zh".into(),
            title: "退货运费".into(),
            body: "第一行\n第二行".into(),
            tags: vec!["退货".into()],
            intents: vec!["return_shipping".into()],
            language: "zh".into(),
            updated_at: 0,
        };
        let mut editor = ArticleEditor::edit(&article);
        assert!(!editor.is_dirty());
        editor.input(KeyPress::plain(KeyCode::Enter));
        assert_eq!(editor.focus, Field::Tags);
        editor.paste("运费\n发票");
        assert_eq!(editor.value(Field::Tags), "退货运费 发票");
        assert!(editor.is_dirty());
        let new = editor.to_new_article().unwrap();
        assert_eq!(new.slug.as_deref(), Some("return-shipping-zh"));
        assert_eq!(new.body, "第一行\n第二行");
        assert_eq!(new.tags, vec!["退货运费 发票"]);
    }
}
