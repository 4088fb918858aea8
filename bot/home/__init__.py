"""App Home: a dashboard on the bot's Home tab for each person who opens it."""
