//! The bot's I/O shell: takes a customer's message from a hub, looks up the knowledge
//! base and the article, lets [`crate::bot::decide`] choose, and hands the outcome back to
//! the hub, which writes and delivers it. Each message is handled in its own task; the
//! hub sends a conversation's messages one at a time.

use std::sync::Arc;

use kefu_proto::{ConversationId, WorkspaceId};
use tokio::sync::mpsc;

use super::{HubCommand, Hubs};
use crate::bot::{self, Action, Candidate, HandOver, Memory, Rules};
use crate::intent::{ArticleEvidence, Classification, language_of};
use crate::knowledge::Knowledge;
use crate::store::Store;

/// A customer's message for the bot.
#[derive(Debug)]
pub struct BotRequest {
    /// The workspace.
    pub workspace: WorkspaceId,
    /// The conversation.
    pub conversation: ConversationId,
    /// What the customer wrote.
    pub message: String,
    /// What the bot remembers of the conversation.
    pub memory: Memory,
}

/// What the bot decided.
#[derive(Debug)]
pub struct BotOutcome {
    /// The conversation.
    pub conversation: ConversationId,
    /// What to do.
    pub action: Action,
    /// What the bot remembers now.
    pub memory: Memory,
    /// How the message was classified.
    pub classification: Classification,
    /// The article answered with, if any.
    pub article: Option<i64>,
}

/// Starts the bot; returns where to send it messages.
pub fn spawn(
    store: Store,
    knowledge: Arc<Knowledge>,
    rules: Rules,
    hubs: Arc<Hubs>,
) -> mpsc::UnboundedSender<BotRequest> {
    let (tx, mut rx) = mpsc::unbounded_channel::<BotRequest>();
    tokio::spawn(async move {
        while let Some(request) = rx.recv().await {
            let (store, knowledge, hubs) = (store.clone(), knowledge.clone(), hubs.clone());
            tokio::spawn(async move {
                let workspace = request.workspace;
                let outcome = answer(&store, &knowledge, rules, request).await;
                if let Some(hub) = hubs.get(workspace) {
                    let _ = hub.send(HubCommand::BotDone(Box::new(outcome))).await;
                }
            });
        }
    });
    tx
}

async fn answer(store: &Store, knowledge: &Knowledge, rules: Rules, request: BotRequest) -> BotOutcome {
    let BotRequest { workspace, conversation, message, memory } = request;
    let language = language_of(&message);
    let looked_up = async {
        let hits = knowledge.answers(workspace, &message, 3)?;
        let mut articles = Vec::with_capacity(hits.len());
        for hit in &hits {
            if let Some(article) = store.article(workspace, hit.id).await? {
                articles.push((article, hit.score));
            }
        }
        Ok::<_, crate::Error>(articles)
    };
    match looked_up.await {
        Ok(articles) => {
            let evidence: Vec<ArticleEvidence> =
                articles.iter().map(|(a, score)| ArticleEvidence { intents: &a.intents, score: *score }).collect();
            let classification = knowledge.classifier.classify(&message, &evidence);
            let best = articles.first().map(|(a, _)| Candidate { id: a.id, title: &a.title, body: &a.body });
            let (action, memory) = bot::decide(&message, language, &classification, best, &memory, rules);
            let article = match &action {
                Action::Reply { article, .. } => *article,
                _ => None,
            };
            BotOutcome { conversation, action, memory, classification, article }
        }
        Err(e) => {
            // A bot that cannot look things up hands over rather than leave anyone waiting.
            tracing::error!(error = %e, %conversation, "bot lookup failed; handing over");
            let text = if language == "zh" {
                "正在为您转接人工客服，请稍候。"
            } else {
                "Connecting you with a person, one moment please."
            };
            BotOutcome {
                conversation,
                action: Action::HandOver { text: text.into(), why: HandOver::NotConfident },
                memory,
                classification: Classification { intent: None, confidence: 0.0, reason: format!("lookup failed: {e}") },
                article: None,
            }
        }
    }
}
