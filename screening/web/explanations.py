"""The record page's "Why this score": a per-app cache of loaded models and the lookup.

Unpickling a model artifact and naming its vocabulary cost far more than rendering a page
(bench/explain.py), so ``create_app`` gives each app one ``ModelCache`` (on ``app.state``)
holding an ``Explainer`` per loaded version. It is keyed by ModelVersion id: a retrain
makes a new version with a new id, so entries never go stale and need no invalidation; the
cache only bounds how many versions it keeps. Failed loads are not cached (they are cheap:
the checksum is checked before unpickling) so the page keeps reporting the real error.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from sqlmodel import Session

from screening.explain import Explainer, Explanation, explain_prior, unavailable
from screening.prior import gates_from_config
from screening.service import PRIOR_NAME, load_model, record_document
from store.errors import MmlrError
from store.models import ModelVersion, Record

log = logging.getLogger(__name__)


class ModelCache:
    """Explainers of loaded models by ModelVersion id, least recently used evicted first.

    ``loads`` counts artifact loads attempted (hits do not count): an observable for tests
    and for anyone wondering whether pages reload models."""

    def __init__(self, max_models: int = 3) -> None:
        self.max_models = max(1, max_models)
        self.loads = 0
        self._models: OrderedDict[int, Explainer] = OrderedDict()
        # Page handlers run in a thread pool: two first views of a version must not both load.
        self._lock = threading.Lock()

    def get(self, mv: ModelVersion) -> Explainer | None:
        """The explainer of ``mv``'s fitted model (None for the keyword prior);
        ScreeningError when the artifact cannot be loaded."""
        if mv.name == PRIOR_NAME:
            return None
        key = int(mv.id or 0)
        with self._lock:
            explainer = self._models.get(key)
            if explainer is not None:
                self._models.move_to_end(key)
                return explainer
            self.loads += 1
            model = load_model(mv)
            assert model is not None  # not the prior (checked above)
            explainer = Explainer(model)
            self._models[key] = explainer
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
            log.info("loaded model version %s for explanations", key)
            return explainer


def record_explanation(session: Session, record: Record, cache: ModelCache,
                       k: int = 8) -> Explanation:
    """Explain ``record``'s score under the model version that produced it. Never raises an
    MmlrError: a version that cannot be used becomes an explanation carrying its one-line
    error, so the page around it still renders."""
    if record.score_model_version_id is None:
        return unavailable("this record has not been scored yet")
    mv = session.get(ModelVersion, record.score_model_version_id)
    if mv is None:
        return unavailable(f"model version {record.score_model_version_id} no longer exists")
    try:
        explainer = cache.get(mv)
        doc = record_document(record)
        # the prior is explained with the gates of the query stored with its version
        explanation = (explain_prior(doc, gates_from_config(mv.config), k)
                       if explainer is None else explainer.explain(doc, k))
    except MmlrError as exc:  # ScreeningError (artifact) or ValidationError (stored config)
        explanation = unavailable(exc.one_line())
    explanation.model_version_id = mv.id
    explanation.model_name = mv.name
    return explanation
