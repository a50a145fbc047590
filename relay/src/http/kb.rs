//! The knowledge base over HTTP: articles (read by any agent, written by supervisors and
//! admins) and search.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use kefu_proto::ErrorCode;
use kefu_proto::api::{Article, NewArticle, SearchHit};
use serde::Deserialize;

use super::{ApiJson, ApiPath, AuthedAgent};
use crate::RelayState;
use crate::error::{Error, Result};
use crate::kb::{KnowledgeBase, snippet};
use crate::permissions::Permission;

/// Longest search query, in bytes.
const MAX_QUERY_BYTES: usize = 1000;

/// `GET /api/v1/kb/articles`.
pub async fn list(State(relay): State<Arc<RelayState>>, authed: AuthedAgent) -> Result<Json<Vec<Article>>> {
    Ok(Json(relay.store.articles(authed.agent.workspace_id).await?))
}

/// `GET /api/v1/kb/articles/{id}`.
pub async fn get(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Article>> {
    relay
        .store
        .article(authed.agent.workspace_id, id)
        .await?
        .map(Json)
        .ok_or_else(|| Error::refused(ErrorCode::NotFound, format!("no article {id}")))
}

/// `POST /api/v1/kb/articles`: creates, or replaces the article with the same slug.
pub async fn create(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiJson(new): ApiJson<NewArticle>,
) -> Result<(StatusCode, Json<Article>)> {
    authed.require(Permission::WriteKnowledgeBase)?;
    let article = relay.knowledge.save(&relay.store, authed.agent.workspace_id, &new).await?;
    Ok((StatusCode::CREATED, Json(article)))
}

/// `PUT /api/v1/kb/articles/{id}`.
pub async fn replace(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiPath(id): ApiPath<i64>,
    ApiJson(new): ApiJson<NewArticle>,
) -> Result<Json<Article>> {
    authed.require(Permission::WriteKnowledgeBase)?;
    Ok(Json(relay.knowledge.replace(&relay.store, authed.agent.workspace_id, id, &new).await?))
}

/// `DELETE /api/v1/kb/articles/{id}`.
pub async fn delete(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode> {
    authed.require(Permission::WriteKnowledgeBase)?;
    relay.knowledge.delete(&relay.store, authed.agent.workspace_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?q=…&limit=N`.
#[derive(Deserialize)]
pub struct SearchQuery {
    q: String,
    limit: Option<usize>,
}

/// `GET /api/v1/kb/search?q=…`: the best articles for a question in Chinese or English.
pub async fn search(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Vec<SearchHit>>> {
    if query.q.len() > MAX_QUERY_BYTES {
        return Err(Error::refused(ErrorCode::TooLarge, format!("query exceeds {MAX_QUERY_BYTES} bytes")));
    }
    let workspace = authed.agent.workspace_id;
    let limit = query.limit.unwrap_or(10).clamp(1, 50);
    let hits = relay.knowledge.answers(workspace, &query.q, limit)?;
    let terms = KnowledgeBase::terms(&query.q);
    let mut found = Vec::with_capacity(hits.len());
    for hit in hits {
        if let Some(article) = relay.store.article(workspace, hit.id).await? {
            found.push(SearchHit {
                id: article.id,
                snippet: snippet(&article.body, &terms, 120),
                slug: article.slug,
                title: article.title,
                score: hit.score,
                language: article.language,
            });
        }
    }
    Ok(Json(found))
}
