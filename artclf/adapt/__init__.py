"""Adapting a trained run to a collection: python -m artclf.adapt --workdir=BASE --labels=CSV --out=NEW

  corrections   the corrections CSV the page exports, read under the base run's scheme
  adapter       the new run: heads retrained on the base run's training data and the
                collection's rows (weighted), before/after figures on held-out rows,
                calibration and familiarity refitted; BASE never modified
  records       where an adapted run came from (base run, the CSV's digest, rows used)
"""
