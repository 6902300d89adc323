"""The pytest evaluation harness: the plugin and its options (`plugin`), settings (`settings`), the run's
shared state (`context`, `environ`), row records and metric files (`records`), the controller's writer
(`writer`), the regression gate (`gate`), failure explanations (`explain`), model construction (`factory`),
generation progress (`progress`) and the run's trace (`trace`).
"""
