"""Prepare pull requests and issue texts for pytest from our cache fixes.

Run through ``scripts/export_upstream_pr.py``.  Modules, one job each:
``material`` (the per-fix texts and their loader, ``fixes/``), ``planning``
(what each branch holds), ``testcode`` (the module change by the build's
merge, the tests merged into pytest's test file), ``gitops`` (commits without
touching the work tree, a repository of a release's sdist), ``messages``
(commit messages, descriptions, issue texts, our words), ``lint`` and
``testruns`` (pytest's hooks and test runs), ``checks`` (a branch's table),
``cli`` (options and the report).
"""
