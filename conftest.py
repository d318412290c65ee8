# pytester runs a user's test file in a fresh pytest and lets us check outcomes and output:
# the plugin's own behaviour is tested the way its users meet it.
pytest_plugins = ["pytester"]
