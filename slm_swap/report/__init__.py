"""The report: its inputs (`inputs`), markdown helpers (`markdown`), values (`cells`), tables (`tables`),
failure examples (`examples`), sections (`sections`), chart (`chart`) and the whole (`build`), which adds each
track's own section (`Track.report_section`)."""
