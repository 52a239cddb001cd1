from lrp.cli import main

main()
