"""Shared, small trained models (seconds on one thread)."""

from __future__ import annotations

import pytest
from auditkit_graph._threads import one_thread
from auditkit_graph.data import load_graph
from auditkit_graph.generators import gcn_classifier, train_gcn


@pytest.fixture(scope="session")
def sbm_model():
    graph = load_graph("sbm")
    gnn = train_gcn(graph, epochs=200)
    return graph, gnn, gcn_classifier(graph, gnn)


@pytest.fixture(scope="session")
def karate_model():
    graph = load_graph("karate")
    gnn = train_gcn(graph, epochs=200)
    return graph, gnn, gcn_classifier(graph, gnn)


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield
