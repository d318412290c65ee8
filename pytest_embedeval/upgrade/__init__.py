"""The upgrade question, asked where it is asked: a pull request's one comment, a bisect over versions, and the
environments both build (the face's tools, above the run and its reports)."""
