from roomchat.cli import main

main()
