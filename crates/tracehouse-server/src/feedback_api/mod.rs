//! What people add to stored logs after the fact: updates of a log's feedback fields, and
//! scores. The update routes share paths with the read routes, which register them (see
//! `read_api`); the score routes are [`router`]'s.

pub(crate) mod scores;
pub(crate) mod updates;

use axum::Router;
use axum::routing::get;

use crate::{AppState, routes};

/// The score routes, under every spelling clients use.
pub(crate) fn router() -> Router<AppState> {
    let mut router = Router::new();
    for variant in routes::variants("/logs/{id}/scores") {
        router = router.route(
            &variant,
            get(scores::list_scores).post(scores::create_score),
        );
    }
    for variant in routes::variants("/logs/{id}/scores/{score_id}") {
        router = router.route(
            &variant,
            get(scores::get_score)
                .patch(scores::update_score)
                .delete(scores::delete_score),
        );
    }
    router
}
