from services.node_agent.service import main

main()
