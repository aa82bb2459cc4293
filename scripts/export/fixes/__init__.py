"""What each fix offers pytest: one module per pull request or issue text.

The module changes come from the layers (``backend/layers.py``); these modules
hold only what is written for pytest's maintainers: the tests that go inline
into ``testing/test_cacheprovider.py``, the changelog fragment, the commit
message, the pull-request description, or the text of an issue to open.
"""
