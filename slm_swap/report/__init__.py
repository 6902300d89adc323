"""The report: its inputs (`inputs`), markdown (`markdown`), chart (`chart`) and the whole (`build`)."""
