"""The pytest evaluation harness: the plugin and its options (`plugin`), settings (`settings`), the run's
shared state (`context`, `environ`), which rows this process runs (`shares`), row records and metric files
(`records`), a metric file checked against its predictions and the flags two runs pair on (`paired`), the
controller's writer (`writer`), the regression gate (`gate`), failure explanations (`explain`), which answerer
`--model` builds and how the row tracks wrap it (`factory`: `ANSWERERS`), progress lines (`progress`), the run's
trace (`trace`), which tracks a run selects (`selection`) and stops printed as one `error:` line (`stops`).
"""
