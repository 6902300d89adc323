"""The pytest evaluation harness: the plugin and its options (`plugin`), settings (`settings`), the run's
shared state (`context`, `environ`), which rows this process runs (`shares`), row records and metric files
(`records`), the controller's writer (`writer`), the regression gate (`gate`), failure explanations
(`explain`), model construction (`factory`), progress lines (`progress`) and the run's trace (`trace`).
"""
