"""The service layer: what happens to a recorded request, from decision to outcome.

prepare (check the ticket; build makes the signed transaction) -> record (one transaction
per group of requests; a request alone is a group of one) -> send -> confirm (read the
chain, decide) -> settle (carry out the decision) -> outcomes (ticket, history, events).
Beside them: the outbox relay, the sweeper's decision and quarantine. Everything runs on
a `PipelineContext` of parts (keys, fee state, caches) and knows nothing of Arq: jobs/
adapts it to the queue, ops/ to the operator.
"""
