"""The pytest evaluation harness: the plugin and its options (`plugin`), settings (`settings`), row records and
metric files (`records`), the controller's writer (`writer`), the regression gate (`gate`), failure
explanations (`explain`), model construction (`factory`) and the run's trace (`trace`).
"""
