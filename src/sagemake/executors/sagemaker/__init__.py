"""SageMaker through boto3: jobs of every kind, followed, answering in the API's own shapes."""
