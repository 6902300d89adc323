"""The row tracks' slice (structured output, tool calling): one case per dataset row, one reply per case.

`definitions` (names, checks, scorers, low in the layers) and `track` (their implementation of
`slm_swap.tracks.protocol.Track`, on top)."""
