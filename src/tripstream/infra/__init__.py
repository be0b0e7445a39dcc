"""Infrastructure: the one CloudFormation template, what is read from it, the Lambda package, and deploys."""
