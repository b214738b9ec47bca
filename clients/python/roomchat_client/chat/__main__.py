from roomchat_client.chat import run

run()
